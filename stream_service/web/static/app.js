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
  const data = response.status === 204 ? {} : await response.json();
  if (response.status === 401 && path !== "/session") $("#key-form").hidden = false;
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

// With API keys on, the key is asked for once and posted to /session, which sets it as an HttpOnly
// cookie: the <img> of each video and each EventSource carry it, as every fetch here does. No script
// keeps or reads the key, and it is never in a URL.
$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", "/session", { key: $("#key").value });
    $("#key-form").hidden = true;
    status("Key accepted.");
    refresh();
  } catch (error) {
    status(error.message);
  } finally {
    $("#key").value = "";
  }
});

function who(event) {
  return event.name || (event.person != null ? `person ${event.person}` : "someone unknown");
}

function describe(event) {
  const time = new Date(event.time).toLocaleTimeString();
  if (event.type === "state") return `${time} ${event.state}${event.message ? `: ${event.message}` : ""}`;
  const verb = { appeared: "appeared", left: "left", changed: "is now" }[event.type];
  return `${time} ${event.type === "changed" ? `face ${event.track} ${verb} ${who(event)}` : `${who(event)} ${verb}`}`;
}

// The background filter chosen in a form (ids `${prefix}background-filter` and `${prefix}background`).
function backdrop(prefix) {
  const kind = $(`#${prefix}background-filter`).value || null;
  return { background_filter: kind, background: kind && $(`#${prefix}background`).value ? $(`#${prefix}background`).value : null };
}

function card(stream) {
  const video = stream.source === "webrtc" && !stream.broadcast
    ? el("p", { className: "call-note", textContent: "A camera over WebRTC: its video goes back to its caller only." })
    : el("img", { className: "video", alt: `The live video of ${stream.name}`, src: `/streams/${stream.id}/mjpeg` });
  const watch = stream.broadcast
    ? el("a", { className: "watch", href: `/watch/${stream.id}`, target: "_blank", textContent: "Watch page (WebRTC)" })
    : "";
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
    el("div", { className: "side" }, info, stop, watch, el("h3", { textContent: "Who came and went" }), log));
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
  const body = { source: $("#source").value, loop: $("#loop").checked, filter: $("#filter").value || null, ...backdrop("") };
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

// Your camera: offered over WebRTC, sent back by the server with the faces boxed and named (or blurred).
const call = { pc: null, id: null, media: null };

function callInfo(message) {
  $("#call-info").textContent = message;
}

function gathered(pc) {
  // The server takes no trickled candidates: the offer goes once it holds them all.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

async function startCall() {
  if (!navigator.mediaDevices?.getUserMedia) {
    callInfo("The camera needs a secure page: open it on https:// (see docs/webrtc.md) or on localhost.");
    return;
  }
  $("#call-start").disabled = true;
  try {
    callInfo("Asking for the camera…");
    call.media = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 360 } }, audio: false });
    const pc = (call.pc = new RTCPeerConnection()); // no STUN or TURN: on a LAN or localhost none is needed
    for (const track of call.media.getVideoTracks()) pc.addTrack(track, call.media);
    pc.addEventListener("track", (event) => {
      const video = $("#call-video");
      video.srcObject = new MediaStream([event.track]);
      video.classList.add("live");
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== call.pc) return;
      if (pc.connectionState === "connected") callInfo("Live: your camera comes back recognised.");
      else if (["failed", "closed"].includes(pc.connectionState)) hangUp(`The call ended (${pc.connectionState}).`);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    callInfo("Calling the server…");
    const filter = $("#call-filter").value || null;
    const answer = await api("POST", "/webrtc/offer", {
      sdp: pc.localDescription.sdp, type: "offer", name: "camera", filter, broadcast: $("#call-broadcast").checked, ...backdrop("call-"),
    });
    call.id = answer.id;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    $("#call-stop").disabled = false;
    refresh();
  } catch (error) {
    hangUp(error.message);
  }
}

function hangUp(message) {
  const { pc, id, media } = call;
  Object.assign(call, { pc: null, id: null, media: null });
  pc?.close();
  media?.getTracks().forEach((track) => track.stop());
  if (id) api("DELETE", `/streams/${id}`).catch(() => {}).finally(refresh); // it may have ended already
  $("#call-video").classList.remove("live");
  $("#call-video").srcObject = null;
  $("#call-start").disabled = false;
  $("#call-stop").disabled = true;
  callInfo(message);
}

$("#call").addEventListener("submit", (event) => {
  event.preventDefault();
  startCall();
});
$("#call-stop").addEventListener("click", () => hangUp("Hung up."));
$("#call-filter").addEventListener("change", async () => {
  if (!call.id) return;
  try {
    await api("PATCH", `/streams/${call.id}`, { filter: $("#call-filter").value || null });
    callInfo(`Now: ${$("#call-filter").selectedOptions[0].textContent}.`);
  } catch (error) {
    callInfo(error.message);
  }
});
for (const id of ["#call-background-filter", "#call-background"]) {
  $(id).addEventListener("change", async () => {
    if (!call.id) return;
    try {
      await api("PATCH", `/streams/${call.id}`, backdrop("call-"));
      callInfo(`Now: background ${$("#call-background-filter").selectedOptions[0].textContent}.`);
    } catch (error) {
      callInfo(error.message);
    }
  });
}
window.addEventListener("pagehide", () => call.pc?.close());

refresh();
setInterval(refresh, 2000);
