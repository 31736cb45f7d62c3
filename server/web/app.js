// Vigia web viewer: log in, list cameras with snapshots, watch them live over WHEP.
// Plain JavaScript, no build step; talks only to the recorder that served the page.
"use strict";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("vigia.token"),
  user: sessionStorage.getItem("vigia.user") || "",
  tiles: new Map(), // camera id -> tile
  snapshotTimer: null,
};
window.vigia = state; // for tests and for poking at from the console

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", "Bearer " + state.token);
  const resp = await fetch(API + path, { ...options, headers });
  if (resp.status === 401 && state.token) {
    logout(false);
    throw new Error("session expired: log in again");
  }
  return resp;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return body.error ? body.error.message : resp.statusText;
  } catch (e) {
    return resp.status + " " + resp.statusText;
  }
}

// --- login ------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const body = { name: $("login-name").value, password: $("login-password").value };
  const resp = await fetch(API + "/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!resp.ok) {
    $("login-error").textContent = await errorText(resp);
    return;
  }
  const session = await resp.json();
  state.token = session.token;
  state.user = session.user;
  sessionStorage.setItem("vigia.token", state.token);
  sessionStorage.setItem("vigia.user", state.user);
  $("login-password").value = "";
  await showMain();
}

function logout(tellServer = true) {
  for (const id of [...state.tiles.keys()]) stopWatching(id);
  if (tellServer && state.token) {
    fetch(API + "/auth/logout", {
      method: "POST",
      headers: { Authorization: "Bearer " + state.token },
      keepalive: true,
    });
  }
  state.token = null;
  sessionStorage.removeItem("vigia.token");
  clearInterval(state.snapshotTimer);
  $("main").hidden = true;
  $("login").hidden = false;
}

// --- cameras ----------------------------------------------------------------------------

async function showMain() {
  $("login").hidden = true;
  $("main").hidden = false;
  $("user-name").textContent = state.user;
  try {
    const server = await (await api("/server")).json();
    $("server-name").textContent = server.name;
    await loadCameras();
  } catch (e) {
    $("grid-empty").textContent = String(e.message || e);
    return;
  }
  clearInterval(state.snapshotTimer);
  state.snapshotTimer = setInterval(refreshSnapshots, 10000);
}

async function loadCameras() {
  const cameras = await (await api("/cameras")).json();
  const list = $("cameras");
  list.replaceChildren();
  for (const cam of cameras) {
    const li = document.createElement("li");
    li.dataset.camera = cam.id;
    const img = document.createElement("img");
    img.alt = cam.name;
    const name = document.createElement("div");
    name.className = "name";
    const online = cam.streams.some((s) => s.state === "online");
    const label = online ? "online" : (cam.streams[0] || {}).state || "stopped";
    name.innerHTML = "<span></span><span></span>";
    name.firstChild.textContent = cam.name;
    name.lastChild.textContent = label;
    name.lastChild.className = "state-" + label;
    li.append(img, name);
    li.addEventListener("click", () => toggleWatching(cam));
    list.append(li);
    loadSnapshot(cam.id, img);
  }
}

async function loadSnapshot(cameraId, img) {
  try {
    const resp = await api(`/cameras/${encodeURIComponent(cameraId)}/snapshot?stream=sub`);
    if (!resp.ok) return;
    const url = URL.createObjectURL(await resp.blob());
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = url;
  } catch (e) {
    /* a snapshot is a nicety: the list works without it */
  }
}

function refreshSnapshots() {
  for (const li of $("cameras").children) loadSnapshot(li.dataset.camera, li.querySelector("img"));
}

// --- live over WHEP ---------------------------------------------------------------------

function toggleWatching(cam) {
  if (state.tiles.has(cam.id)) stopWatching(cam.id);
  else watch(cam);
}

function gatheringComplete(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // send what we have: host candidates come first
  });
}

function makeTile(cam) {
  const tile = document.createElement("div");
  tile.className = "tile";
  tile.dataset.camera = cam.id;
  tile.innerHTML =
    '<video autoplay muted playsinline></video><div class="overlay"><span class="title">' +
    '</span><span class="stats"></span><span class="spacer"></span>' +
    '<button class="close" title="Stop">✕</button></div><div class="status">connecting…</div>';
  tile.querySelector(".title").textContent = cam.name;
  tile.querySelector(".close").addEventListener("click", () => stopWatching(cam.id));
  return tile;
}

async function watch(cam) {
  const stream = $("stream-select").value;
  const element = makeTile(cam);
  $("grid").append(element);
  $("grid-empty").hidden = true;
  document.querySelector(`#cameras li[data-camera="${cam.id}"]`)?.classList.add("watching");
  const pc = new RTCPeerConnection({ iceServers: [] });
  const tile = { camera: cam.id, stream, pc, element, video: element.querySelector("video"),
    location: null, timer: null, last: null };
  state.tiles.set(cam.id, tile);
  const status = (text) => { element.querySelector(".status").textContent = text; };
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => {
    tile.video.srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") status("");
    else if (pc.connectionState === "failed") status("connection failed");
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    const path = `/cameras/${encodeURIComponent(cam.id)}/whep?stream=${stream}`;
    const resp = await api(path, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (resp.status !== 201) throw new Error(await errorText(resp));
    tile.location = resp.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
  } catch (e) {
    status(String(e.message || e));
    return;
  }
  tile.timer = setInterval(() => updateStats(tile), 1000);
}

async function updateStats(tile) {
  const report = await tile.pc.getStats();
  let inbound = null;
  let rtt = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
    if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
      rtt = s.currentRoundTripTime;
    }
  });
  if (!inbound) return;
  const now = { t: performance.now(), frames: inbound.framesDecoded || 0 };
  let fps = inbound.framesPerSecond;
  if (fps === undefined && tile.last) {
    fps = ((now.frames - tile.last.frames) * 1000) / (now.t - tile.last.t);
  }
  tile.last = now;
  // receiver-side latency: network (half the round trip) + jitter buffer + decode
  let latency = null;
  if (inbound.jitterBufferEmittedCount) {
    latency = inbound.jitterBufferDelay / inbound.jitterBufferEmittedCount;
    if (inbound.framesDecoded) latency += (inbound.totalDecodeTime || 0) / inbound.framesDecoded;
    if (rtt !== null) latency += rtt / 2;
  }
  const parts = [];
  if (fps !== undefined) parts.push(`${Math.round(fps)} fps`);
  if (latency !== null) parts.push(`${Math.round(latency * 1000)} ms`);
  if (inbound.frameWidth) parts.push(`${inbound.frameWidth}×${inbound.frameHeight}`);
  tile.element.querySelector(".stats").textContent = parts.join(" · ");
  tile.stats = { fps, latencyMs: latency === null ? null : latency * 1000,
    framesDecoded: now.frames };
}

function stopWatching(cameraId) {
  const tile = state.tiles.get(cameraId);
  if (!tile) return;
  state.tiles.delete(cameraId);
  clearInterval(tile.timer);
  tile.pc.close();
  if (tile.location && state.token) {
    fetch(tile.location, {
      method: "DELETE",
      headers: { Authorization: "Bearer " + state.token },
      keepalive: true,
    });
  }
  tile.element.remove();
  document.querySelector(`#cameras li[data-camera="${cameraId}"]`)?.classList.remove("watching");
  $("grid-empty").hidden = state.tiles.size > 0;
}

// --- start ------------------------------------------------------------------------------

$("login-form").addEventListener("submit", login);
$("logout-button").addEventListener("click", () => logout(true));
window.addEventListener("pagehide", () => {
  for (const id of [...state.tiles.keys()]) stopWatching(id);
});
if (state.token) showMain();
else $("login").hidden = false;
