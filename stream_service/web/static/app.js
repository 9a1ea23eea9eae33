// The live page: every stream with its annotated video (an <img> on the MJPEG route) and its events
// (an EventSource): who appeared and who left. No framework and no build step.
"use strict";

const $ = (selector) => document.querySelector(selector);
const shown = new Map(); // stream id -> {card, events}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function status(message) {
  $("#status").textContent = message;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

function who(event) {
  return event.name || (event.person != null ? `person ${event.person}` : "someone unknown");
}

function describe(event) {
  const time = new Date(event.time).toLocaleTimeString();
  if (event.type === "state") return `${time} ${event.state}${event.message ? `: ${event.message}` : ""}`;
  const verb = { appeared: "appeared", left: "left", changed: "is now" }[event.type];
  return `${time} ${event.type === "changed" ? `face ${event.track} ${verb} ${who(event)}` : `${who(event)} ${verb}`}`;
}

function card(stream) {
  const video = el("img", { className: "video", alt: `The live video of ${stream.name}`, src: `/streams/${stream.id}/mjpeg` });
  const info = el("p", { className: "info" });
  const stop = el("button", { type: "button", textContent: "Stop" });
  stop.addEventListener("click", async () => {
    try {
      await api("DELETE", `/streams/${stream.id}`);
      status(`Stopped ${stream.name}.`);
      refresh();
    } catch (error) {
      status(error.message);
    }
  });
  const log = el("ol", { className: "events" });
  const node = el("section", { className: "stream" },
    el("h2", { textContent: stream.name }), el("div", { className: "player" }, video),
    el("div", { className: "side" }, info, stop, el("h3", { textContent: "Who came and went" }), log));
  node.dataset.id = stream.id;
  const events = new EventSource(`/streams/${stream.id}/events`);
  for (const type of ["appeared", "left", "changed", "state"]) {
    events.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      log.prepend(el("li", { className: event.type, textContent: describe(event) }));
      while (log.children.length > 100) log.lastChild.remove();
    });
  }
  return { node, info, events };
}

async function refresh() {
  let list;
  try {
    list = (await api("GET", "/streams")).streams;
  } catch (error) {
    status(error.message);
    return;
  }
  const ids = new Set(list.map((s) => s.id));
  for (const [id, item] of shown) {
    if (!ids.has(id)) {
      item.events.close();
      item.node.remove();
      shown.delete(id);
    }
  }
  for (const stream of list) {
    if (!shown.has(stream.id)) {
      const item = card(stream);
      shown.set(stream.id, item);
      $("#streams").append(item.node);
    }
    const latency = stream.latency_ms ? `, ${stream.latency_ms.p50} ms behind` : "";
    shown.get(stream.id).info.textContent =
      `${stream.state}${stream.message ? ` (${stream.message})` : ""}: ${stream.fps} fps, ` +
      `faces found ${stream.detection_fps} times a second${latency}; ${stream.viewers} watching`;
  }
  if (!list.length) $("#streams").replaceChildren(el("p", { textContent: "No streams yet: start one above." }));
  else $("#streams > p")?.remove();
}

$("#start").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { source: $("#source").value, loop: $("#loop").checked, filter: $("#filter").value || null };
  if ($("#name").value) body.name = $("#name").value;
  status("Opening…");
  try {
    const stream = await api("POST", "/streams", body);
    status(`Playing ${stream.name}.`);
  } catch (error) {
    status(error.message);
  }
  refresh();
});

refresh();
setInterval(refresh, 2000);
