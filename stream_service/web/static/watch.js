// The watch page of one broadcast call (/watch/<id>): over WebRTC through WHEP when this browser decodes
// H.264 (the codec a broadcast is sent in), else as Motion JPEG.
"use strict";

const id = decodeURIComponent(location.pathname.split("/").pop());
const video = document.querySelector("#watch-video");
const watcher = { pc: null, resource: null };

function status(message) {
  document.querySelector("#status").textContent = message;
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

function asMjpeg(why) {
  video.hidden = true;
  const img = document.querySelector("#watch-mjpeg");
  img.src = `/streams/${encodeURIComponent(id)}/mjpeg`;
  img.hidden = false;
  status(`Motion JPEG (${why}).`);
}

async function watch() {
  const h264 = (RTCRtpReceiver.getCapabilities?.("video")?.codecs || []).some((c) => c.mimeType === "video/H264");
  if (!h264) return asMjpeg("this browser does not decode H.264 over WebRTC");
  const pc = (watcher.pc = new RTCPeerConnection()); // no STUN or TURN: on a LAN or localhost none is needed
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addEventListener("track", (event) => { video.srcObject = new MediaStream([event.track]); });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") status("Live over WebRTC.");
    else if (["failed", "closed"].includes(pc.connectionState)) status(`The broadcast ended (${pc.connectionState}).`);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const response = await fetch(`/streams/${encodeURIComponent(id)}/whep`, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    pc.close();
    const error = await response.json().catch(() => ({}));
    if (response.status === 409 || response.status === 404) return status(error.message || response.statusText);
    return asMjpeg(error.message || response.statusText);
  }
  watcher.resource = response.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
}

window.addEventListener("pagehide", () => {
  if (watcher.resource) fetch(watcher.resource, { method: "DELETE", keepalive: true });
  watcher.pc?.close();
});
watch().catch((error) => status(error.message));
