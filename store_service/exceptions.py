"""What the store's core raises; store_service/__init__.py maps each to its HTTP status."""


class UnknownFace(KeyError):
    def __str__(self):
        return f"no face with id {self.args[0]!r}"


class UnknownPhoto(KeyError):
    def __str__(self):
        return f"no photo with sha256 {self.args[0]!r}"


class NoThumbnail(KeyError):
    def __str__(self):
        return f"the face {self.args[0]!r} has no thumbnail (it was stored before faces had them)"


class InvalidFace(ValueError):
    """A descriptor, box, thumbnail or quality that cannot be stored."""


class UnknownPerson(KeyError):
    def __str__(self):
        return f"no person with id {self.args[0]!r}"


class NotInPerson(KeyError):
    def __str__(self):
        return f"face {self.args[0]!r} is not in person {self.args[1]!r}"


class InvalidCorrection(ValueError):
    """A correction whose arguments are not as described."""


class Conflict(RuntimeError):
    """A correction that would break a promise (two faces of one photo in one person), or nothing to undo."""
