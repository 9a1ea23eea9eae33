// Naming a whole album (loaded after app.js, whose helpers it uses): the unknown faces queue ("is this
// X?"), the same-person queue ("are these the same?"), a photo's faces, names typed once and found
// again, and a face the detector missed, drawn by hand on a dropped photo.
// Each queue goes to its next question after every answer; keys: y yes, n no, → (or Space) next.
"use strict";

// Unknown faces asked about per page of the queue: a screen's worth of thumbnails below the question.
const QUEUE_PAGE = 60;
let unknownOrder = "newest"; // or "quality": the best pictures first
let queue = null; // {faces, at, suggestions}: the unknown faces queue as shown
let same = null; // {page, at, skipped}: where the same-person queue is in the list of people, pairs skipped

// -- names: one typed for a face joins the person of that name, or makes one ------------------------

async function personNamed(name) {
  const found = await store("GET", `/people?q=${encodeURIComponent(name)}&limit=50&hidden=true`);
  return found.people.find((person) => (person.name || "").toLowerCase() === name.toLowerCase());
}

// The face goes to the person of that name in one step (pinned there), or starts a new person.
async function nameFace(faceId, name) {
  const person = await personNamed(name);
  if (person) await store("PUT", `/faces/${faceId}/person`, { person: person.id });
  else await store("POST", "/people", { name, faces: [faceId] });
}

// The names the store knows that hold what is typed, offered as the input's list (any album size:
// the store searches, the page never loads every person).
const offerNames = debounce(async (text) => {
  const found = await store("GET", `/people?q=${encodeURIComponent(text)}&limit=20`);
  const names = [...new Set(found.people.map((person) => person.name).filter(Boolean))];
  $("#names").replaceChildren(...names.map((name) => el("option", { value: name })));
});

function nameForm(placeholder, label, done, onName) {
  const input = el("input", { placeholder, required: true, className: "name-input", autocomplete: "off" });
  input.setAttribute("list", "names");
  input.oninput = () => offerNames(input.value.trim());
  const form = el("form", { className: "name-form" }, input, el("button", { type: "submit", textContent: label }));
  form.onsubmit = (event) => {
    event.preventDefault();
    const name = input.value.trim();
    correct(() => onName(name), `${done} ${name}.`);
  };
  return form;
}

// -- "Is this X?": the unknown faces, one at a time ---------------------------------------------------

async function showUnknown() {
  if (!queue) {
    const data = await store("GET", `/faces?person=none&limit=${QUEUE_PAGE}&order=${unknownOrder}`);
    queue = { faces: data.faces, at: 0, suggestions: null };
  }
  queue.at = Math.min(queue.at, queue.faces.length - 1);
  const face = queue.faces[queue.at];
  if (face && queue.suggestions === null) {
    queue.suggestions = (await store("GET", `/faces/${face.id}/suggestions?limit=3`)).suggestions;
  }
  const order = el("select", { id: "order" }, ...["newest", "quality"].map((o) => el("option", { value: o, textContent: `${o} first` })));
  order.value = unknownOrder;
  order.onchange = () => {
    unknownOrder = order.value;
    reloadUnknown();
  };
  const heading = el("div", { className: "toolbar" }, el("h2", { textContent: "Unknown faces" }), order);
  if (!face) {
    $("#view").replaceChildren(heading, el("p", { id: "queue-empty", textContent: "No unknown faces: every face is named." }));
    return;
  }
  const grid = el("ul", { className: "faces" }, ...queue.faces.map((f, k) => unknownCard(f, k)));
  $("#view").replaceChildren(heading, question(face), grid);
}

function reloadUnknown() {
  queue = null;
  render();
}

function unknownCard(face, k) {
  const pick = el("button", { type: "button", className: "pick-face" }, faceImage(face.id, "An unknown face"));
  pick.onclick = () => goTo(k);
  return el("li", { className: k === queue.at ? "face current" : "face" }, pick);
}

function question(face) {
  const [first, ...others] = queue.suggestions;
  const ask = first
    ? el("p", { id: "ask" }, "Is this ", el("strong", { textContent: nameOf(first) }), `? (${first.distance.toFixed(2)})`)
    : el("p", { id: "ask", textContent: "No one is near enough to suggest: name this face, or go on." });
  const buttons = [
    first && button("yes", "Yes (y)", () => answerFace(true)),
    first && button("no", "No (n)", () => answerFace(false)),
    button("next", "Next (→)", () => goTo(queue.at + 1)),
  ].filter(Boolean);
  const alternatives = others.map((s) => {
    const pick = el("button", { type: "button", className: "alternative" }, faceImage(s.cover_face_id, nameOf(s)), nameOf(s));
    pick.onclick = () => answerFace(true, s);
    return pick;
  });
  const name = nameForm("Someone else: name", "Name", "Named", async (typed) => {
    await nameFace(face.id, typed);
    dropCurrent();
  });
  const photo = el("a", { href: `#/photos/${face.photo_sha256}`, textContent: "The whole photo" });
  return el(
    "section",
    { id: "question", className: "question" },
    el("div", { className: "pair" }, faceImage(face.id, "This face"), first ? faceImage(first.cover_face_id, nameOf(first)) : ""),
    ask,
    el("div", { className: "toolbar" }, ...buttons, photo),
    alternatives.length ? el("div", { className: "toolbar" }, "Or: ", ...alternatives) : "",
    name,
  );
}

function button(id, text, action) {
  const node = el("button", { type: "button", id, textContent: text });
  node.onclick = action;
  return node;
}

// Yes: the face joins that person (the existing assign) and leaves the queue. No: that person is
// never suggested for it again (a correction); the next suggestion is asked, else the next face.
async function answerFace(yes, suggestion = queue.suggestions[0]) {
  const face = queue.faces[queue.at];
  if (yes) {
    await correct(async () => {
      await store("PUT", `/faces/${face.id}/person`, { person: suggestion.person });
      dropCurrent();
    }, `Yes: ${nameOf(suggestion)}.`);
  } else {
    await correct(async () => {
      await store("POST", `/faces/${face.id}/not-person`, { person: suggestion.person });
      queue.suggestions = null;
    }, `Not ${nameOf(suggestion)}.`);
  }
}

function dropCurrent() {
  queue.faces.splice(queue.at, 1);
  queue.suggestions = null;
  if (!queue.faces.length) queue = null; // the next page, if any
}

function goTo(k) {
  if (k >= queue.faces.length) return reloadUnknown(); // from the top: what was skipped is asked again
  queue.at = k;
  queue.suggestions = null;
  render();
}

// -- "Are these the same person?": the people largest first, each with its nearest other ------------

async function showSame() {
  same = same || { page: 1, at: 0, skipped: new Set() };
  const pair = await nextPair();
  const heading = el("h2", { textContent: "Same person?" });
  if (!pair) {
    $("#view").replaceChildren(heading, el("p", { id: "queue-empty", textContent: "No more people to compare." }));
    return;
  }
  const [a, b] = pair;
  const card = (p) =>
    el("a", { className: "person", href: `#/people/${p.id}` }, faceImage(p.cover_face_id, nameOf(p)), el("span", { className: "name", textContent: nameOf(p) }), el("span", { className: "count", textContent: plural(p.count, "face") }));
  $("#view").replaceChildren(
    heading,
    el(
      "section",
      { id: "question", className: "question" },
      el("div", { className: "pair" }, card(a), card(b)),
      el("p", { id: "ask", textContent: `Are these the same person? (${b.distance.toFixed(2)})` }),
      el(
        "div",
        { className: "toolbar" },
        button("yes", "Yes (y)", () => answerSame(a, b, true)),
        button("no", "No (n)", () => answerSame(a, b, false)),
        button("next", "Next (→)", () => {
          same.skipped.add(pairKey(a.id, b.id));
          render();
        }),
      ),
    ),
  );
}

const pairKey = (a, b) => (a < b ? `${a}-${b}` : `${b}-${a}`);

// The next pair not skipped: people in the order the grid lists them, each with its suggestions.
async function nextPair() {
  for (;;) {
    const data = await store("GET", `/people?page=${same.page}&limit=${PAGE_SIZE}`);
    for (; same.at < data.people.length; same.at++) {
      const person = data.people[same.at];
      const found = await store("GET", `/people/${person.id}/suggestions?limit=5`);
      const other = found.suggestions.find((s) => !same.skipped.has(pairKey(person.id, s.person)));
      if (other) return [person, { ...other, id: other.person }];
    }
    if (same.page * PAGE_SIZE >= data.total) return null;
    same.page += 1;
    same.at = 0;
  }
}

// Yes: the smaller joins the larger (the existing merge). No: they are kept apart from now on.
function answerSame(a, b, yes) {
  const [into, other] = a.count >= b.count ? [a, b] : [b, a];
  if (yes) {
    return correct(() => store("POST", `/people/${into.id}/merge`, { people: [other.id] }), `Merged ${nameOf(other)} into ${nameOf(into)}.`);
  }
  return correct(() => store("POST", `/people/${a.id}/not-same`, { person: b.id }), "Kept apart.");
}

// -- the queues' keys ---------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
  if (location.hash !== "#/unknown" && location.hash !== "#/same") return;
  const key = { y: "#yes", n: "#no", ArrowRight: "#next", " ": "#next" }[event.key];
  const target = key && document.querySelector(key);
  if (target) {
    event.preventDefault();
    target.click();
  }
});

// -- a photo's faces ------------------------------------------------------------------------------

async function showPhotoFaces(sha) {
  const photo = await store("GET", `/photos/${encodeURIComponent(sha)}`);
  const cards = photo.faces.map((face) => {
    const name = face.person == null ? el("span", { className: "name", textContent: "Unknown" }) : el("a", { className: "name", href: `#/people/${face.person}`, textContent: face.name || "Unnamed" });
    const rename = nameForm(face.person == null ? "Name" : "Move to…", face.person == null ? "Name" : "Move", face.person == null ? "Named" : "Moved to", (typed) => nameFace(face.id, typed));
    return el("li", { className: "face" }, faceImage(face.id, face.name || "A face"), name, rename);
  });
  const back = el("a", { href: "#/", textContent: "← All people" });
  $("#view").replaceChildren(back, el("h2", { textContent: plural(photo.faces.length, "face") + " in this photo" }), el("ul", { className: "faces" }, ...cards));
}

// -- a face the detector missed: drag a rectangle round it on the dropped photo ------------------------

let drawing = null; // {x, y}: where the drag began, in the shown image's pixels
let drawnBox = null; // {left, top, width, height} in the shown image's pixels

function pointIn(event) {
  const rect = $("#photo-img").getBoundingClientRect();
  const clamp = (v, most) => Math.max(0, Math.min(v, most));
  return { x: clamp(event.clientX - rect.left, rect.width), y: clamp(event.clientY - rect.top, rect.height) };
}

function drawBox(box) {
  const drawn = $("#drawn");
  Object.assign(drawn.style, { left: `${box.left}px`, top: `${box.top}px`, width: `${box.width}px`, height: `${box.height}px` });
  drawn.hidden = false;
}

$("#photo-img").addEventListener("mousedown", (event) => {
  event.preventDefault();
  drawing = pointIn(event);
  drawnBox = null;
});
document.addEventListener("mousemove", (event) => {
  if (!drawing) return;
  const p = pointIn(event);
  drawnBox = { left: Math.min(p.x, drawing.x), top: Math.min(p.y, drawing.y), width: Math.abs(p.x - drawing.x), height: Math.abs(p.y - drawing.y) };
  drawBox(drawnBox);
});
document.addEventListener("mouseup", () => {
  if (!drawing) return;
  drawing = null;
  if (drawnBox && drawnBox.width >= 8 && drawnBox.height >= 8) {
    $("#draw-form").hidden = false;
    $("#draw-name").focus();
  } else {
    cancelDrawing();
  }
});

function cancelDrawing() {
  drawnBox = null;
  $("#drawn").hidden = true;
  $("#draw-form").hidden = true;
}
$("#draw-cancel").onclick = cancelDrawing;
$("#draw-name").oninput = () => offerNames($("#draw-name").value.trim());

// The drawn box in the photo's upright pixels, as the detect service takes it (box=left,top,width,height).
function uprightBox(box) {
  const scale = shownPhoto.width / $("#photo-img").clientWidth;
  return [box.left, box.top, box.width, box.height].map((v) => Math.round(v * scale));
}

// The detect service describes the drawn region as a face ("detector": "manual"), stores and places
// it; the name typed then puts it with that person, or starts one.
$("#draw-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("#draw-name").value.trim();
  const box = uprightBox(drawnBox);
  correct(async () => {
    const form = new FormData();
    form.append("image", shownPhoto.file);
    form.append("box", box.join(","));
    const result = await api(DETECT_URL, "POST", "/detect", form);
    const face = result.faces.find((f) => f.detector === "manual") || nearestFace(result.faces, box);
    if (!face) throw new ApiError("No face could be described in that box.");
    await nameFace(face.id, name);
    cancelDrawing();
    $("#draw-name").value = "";
    await showStoredBoxes();
  }, `Added ${name}'s face.`);
});

// Every box the store holds for the photo shown, with the names they have now.
async function showStoredBoxes() {
  const { faces } = await store("GET", `/photos/${shownPhoto.sha256}`);
  const names = new Map(faces.filter((f) => f.person != null).map((f) => [f.person, f.name || "Unnamed"]));
  $("#boxes").replaceChildren(...faces.map((face) => faceBox(face, shownPhoto.width, shownPhoto.height, names)));
}

// The face whose box overlaps the drawn one most (for a detect service that does not name its detector).
function nearestFace(faces, [left, top, width, height]) {
  const overlap = (b) => Math.max(0, Math.min(b.left + b.width, left + width) - Math.max(b.left, left)) * Math.max(0, Math.min(b.top + b.height, top + height) - Math.max(b.top, top));
  return faces.reduce((best, f) => (!best || overlap(f.box) > overlap(best.box) ? f : best), null);
}
