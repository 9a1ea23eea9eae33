// The people page: people as a grid of faces, one person's faces, corrections, and photo uploads
// (review.js: the unknown faces and suggestions queues, a photo's faces, a face drawn by hand).
// No framework and no build step. The store's API is on this page's own origin; photos go to the
// detect service at DETECT_URL (the store's setting), which allows this origin (its CORS_ORIGINS).
"use strict";

const STORE_URL = "";
const DETECT_URL = document.body.dataset.detectUrl.replace(/\/$/, "");
// People per page of the grid: a large screen's worth of 112 px faces.
const PAGE_SIZE = 60;
let showHidden = false; // the grid leaves hidden people out unless asked
let search = ""; // the grid shows only the people whose name holds this

const $ = (selector) => document.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function status(message) {
  $("#status").textContent = message;
}

// API keys: each service has its own (docs/operations.md, "API keys"); a key typed once is kept in this browser.
const keyFor = (base) => localStorage.getItem(`facerec-key:${base}`);
let keyWantedFor = null;

function askForKey(base) {
  keyWantedFor = base;
  $("#key-label").textContent = base ? `API key of the detect service at ${base}` : "API key of this store";
  $("#key-form").hidden = false;
  $("#key").focus();
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(`facerec-key:${keyWantedFor}`, $("#key").value);
  $("#key").value = "";
  $("#key-form").hidden = true;
  status("Key saved.");
  render();
});

class ApiError extends Error {}

// One call to a service's JSON API; its errors (one shape: facerec/service/errors.py) become ApiErrors.
async function api(base, method, path, body) {
  const headers = keyFor(base) ? { "X-API-Key": keyFor(base) } : {};
  const init = { method, headers };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch {
    throw new ApiError(`Could not reach ${base || "the store"}.`);
  }
  const data = await response.json();
  if (response.status === 401) askForKey(base);
  if (!response.ok) throw new ApiError(data.message);
  return data;
}

const store = (method, path, body) => api(STORE_URL, method, path, body);

// A face's thumbnail. With a key, the image is fetched with it (an <img> cannot send headers).
function faceImage(faceId, alt) {
  const img = el("img", { alt, width: 112, height: 112, className: "thumb" });
  if (faceId == null) return img;
  const url = `/faces/${faceId}/thumbnail.jpg`;
  if (!keyFor(STORE_URL)) {
    img.src = url;
  } else {
    fetch(url, { headers: { "X-API-Key": keyFor(STORE_URL) } })
      .then((response) => (response.ok ? response.blob() : null))
      .then((blob) => blob && (img.src = URL.createObjectURL(blob)));
  }
  return img;
}

const nameOf = (person) => person.name || "Unnamed";
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// A correction (rename, merge, remove, hide, undo): do it, say so, show the result.
async function correct(action, message) {
  try {
    await action();
    await render(); // the view first: the message says it is done, and shown
    status(message);
  } catch (error) {
    status(error.message);
  }
}

// The views, chosen by the address's #: "#/people/<id>" is a person, "#/page/<n>" a page of people,
// "#/unknown" and "#/same" the queues, "#/photos/<sha256>" a photo's faces (review.js).
async function render() {
  const hash = location.hash;
  const person = hash.match(/^#\/people\/([^/]+)$/);
  const page = hash.match(/^#\/page\/(\d+)$/);
  const photo = hash.match(/^#\/photos\/([^/]+)$/);
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("current", a.hash === hash));
  try {
    if (person) await showPerson(decodeURIComponent(person[1]));
    else if (photo) await showPhotoFaces(decodeURIComponent(photo[1]));
    else if (hash === "#/unknown") await showUnknown();
    else if (hash === "#/same") await showSame();
    else await showPeople(page ? Number(page[1]) : 1);
  } catch (error) {
    status(error.message);
  }
}

async function showPeople(page) {
  const query = `page=${page}&limit=${PAGE_SIZE}&hidden=${showHidden}&q=${encodeURIComponent(search)}`;
  const data = await store("GET", `/people?${query}`);
  const merge = el("button", { type: "button", id: "merge", textContent: "Merge selected", disabled: true });
  merge.onclick = mergeSelected;
  const hidden = el("input", { type: "checkbox", id: "show-hidden", checked: showHidden });
  hidden.onchange = () => {
    showHidden = hidden.checked;
    render();
  };
  const grid = el("ul", { className: "people" }, ...data.people.map(personCard));
  grid.onchange = () => (merge.disabled = grid.querySelectorAll(".pick:checked").length < 2);
  const empty = data.total ? "" : search ? `No one named “${search}”.` : "No people yet: drop photos above.";
  const find = el("input", { type: "search", id: "search", value: search, placeholder: "Search names" });
  find.oninput = debounce(() => {
    search = find.value.trim();
    location.hash === "#/page/1" || location.hash === "" || location.hash === "#/" ? render() : (location.hash = "#/page/1");
  });
  const toolbar = el("div", { className: "toolbar" }, find, merge, el("label", {}, hidden, " Show hidden people"), empty);
  $("#view").replaceChildren(toolbar, grid, pager(page, data.total));
  if (search) find.focus();
}

// Calls `action` once typing has paused for a moment, not at every key.
function debounce(action, ms = 250) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(action, ms);
  };
}

function personCard(person) {
  const pick = el("input", { type: "checkbox", className: "pick", value: person.id, title: "Select to merge" });
  const link = el(
    "a",
    { href: `#/people/${person.id}` },
    faceImage(person.cover_face_id, nameOf(person)),
    el("span", { className: "name", textContent: nameOf(person) }),
    el("span", { className: "count", textContent: plural(person.count, "face") }),
  );
  return el("li", { className: person.hidden ? "person hidden" : "person" }, pick, link);
}

function pager(page, total) {
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const nav = el("nav", { className: "pager" }, `Page ${page} of ${pages}`);
  if (page > 1) nav.prepend(el("a", { href: `#/page/${page - 1}`, textContent: "← Previous" }));
  if (page < pages) nav.append(el("a", { href: `#/page/${page + 1}`, textContent: "Next →" }));
  return nav;
}

// Merges the selected people into the first of them, which keeps its name.
function mergeSelected() {
  const [into, ...others] = [...document.querySelectorAll(".pick:checked")].map((box) => Number(box.value));
  return correct(() => store("POST", `/people/${into}/merge`, { people: others }), `Merged ${others.length + 1} people into one.`);
}

async function showPerson(id) {
  const person = await store("GET", `/people/${encodeURIComponent(id)}`);
  const name = el("input", { id: "name", value: person.name || "", placeholder: "Name", required: true });
  const rename = el("form", { className: "rename" }, name, el("button", { type: "submit", textContent: "Rename" }));
  rename.onsubmit = (event) => {
    event.preventDefault();
    correct(() => store("PATCH", `/people/${person.id}`, { name: name.value.trim() }), `Renamed to ${name.value.trim()}.`);
  };
  const hide = el("button", { type: "button", id: "hide", textContent: person.hidden ? "Show again" : "Hide" });
  hide.onclick = () => correct(() => store("PATCH", `/people/${person.id}`, { hidden: !person.hidden }), person.hidden ? "Shown." : "Hidden.");
  const faces = el("ul", { className: "faces" }, ...person.faces.map((face) => faceCard(person, face)));
  const back = el("a", { href: "#/", textContent: "← All people" });
  $("#view").replaceChildren(back, el("div", { className: "toolbar" }, rename, hide, plural(person.faces.length, "face")), faces);
}

function faceCard(person, face) {
  const remove = el("button", { type: "button", className: "remove", textContent: "Remove", title: `Not ${nameOf(person)}` });
  remove.onclick = () => correct(() => store("POST", `/people/${person.id}/faces/${face.id}/remove`), "Face removed.");
  const photo = el("a", { className: "in-photo", href: `#/photos/${face.photo_sha256}`, textContent: "Photo" });
  const move = nameForm("Move to…", "Move", "Moved to", (name) => nameFace(face.id, name));
  return el("li", { className: "face" }, faceImage(face.id, `A face of ${nameOf(person)}`), el("div", {}, remove, " ", photo), move);
}

$("#undo").onclick = () => correct(() => store("POST", "/people/undo"), "Undone.");

// Uploads: each photo goes to the detect service, which finds, stores and names its faces.
async function upload(file) {
  status(`Looking for faces in ${file.name}…`);
  const form = new FormData();
  form.append("image", file);
  const result = await api(DETECT_URL, "POST", "/detect", form);
  await showPhoto(file, result);
  await render();
  status(`${plural(result.faces.length, "face")} in ${file.name}.`);
}

let shownPhoto = null; // {file, width, height}: the photo last dropped, in upright pixels

async function showPhoto(file, result) {
  shownPhoto = { file, width: result.image.width, height: result.image.height, sha256: result.image.sha256 };
  const img = $("#photo-img");
  URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  const names = await personNames(result.faces);
  const { width, height } = result.image;
  $("#boxes").replaceChildren(...result.faces.map((face) => faceBox(face, width, height, names)));
  $("#photo").hidden = false;
}

async function personNames(faces) {
  const ids = [...new Set(faces.map((face) => face.person).filter((id) => id != null))];
  const people = await Promise.all(ids.map((id) => store("GET", `/people/${id}`)));
  return new Map(people.map((person) => [person.id, nameOf(person)]));
}

// A face's box over the photo, in percent of the upright photo (/detect's boxes are in its pixels).
function faceBox(face, width, height, names) {
  const known = face.person != null;
  const label = el("span", { className: "label", textContent: known ? names.get(face.person) : "Unknown" });
  const box = el(known ? "a" : "span", { className: "box" }, label);
  if (known) box.href = `#/people/${face.person}`;
  const percent = (n, of) => `${(100 * n) / of}%`;
  Object.assign(box.style, {
    left: percent(face.box.left, width),
    top: percent(face.box.top, height),
    width: percent(face.box.width, width),
    height: percent(face.box.height, height),
  });
  return box;
}

async function uploadAll(files) {
  for (const file of files) {
    try {
      await upload(file);
    } catch (error) {
      status(`${file.name}: ${error.message}`);
    }
  }
}

const drop = $("#drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  uploadAll(event.dataTransfer.files);
});
$("#file").addEventListener("change", (event) => {
  uploadAll([...event.target.files]);
  event.target.value = "";
});

window.addEventListener("hashchange", render);
document.addEventListener("DOMContentLoaded", render); // once review.js is loaded too
