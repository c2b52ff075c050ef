// segany's annotation page: the image, the decoder in a worker, clicks -> masks, commits.
// State lives in the server; this page keeps only the current prompts and mask.
import { threshold, toRle, upscale } from "./masks.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token") || localStorage.getItem("segany.token");
if (params.get("token")) localStorage.setItem("segany.token", params.get("token"));

const state = {
  model: null, project: null, images: [], index: 0, image: null, meta: null,
  points: [], labels: [], box: null, mask: null, preview: null, hovering: false, best: null, lastMs: null, decodes: 0, pending: new Map(),
};
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
let nextId = 1;

function status(text, kind = "info") {
  const box = $("status");
  box.textContent = text;
  box.dataset.kind = kind;
}

async function api(path, options = {}) {
  let answer;
  try {
    answer = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
  } catch (error) {
    status("The server does not answer. Your committed masks are safe; retry when it is back.", "error");
    throw error;
  }
  if (answer.status === 401) {
    status("Your session has expired: log in again (committed masks are kept).", "error");
    $("relogin").hidden = false;
    throw new Error("401");
  }
  if (!answer.ok) {
    const detail = await answer.text();
    status(`The server refused: ${detail}`, "error");
    throw new Error(detail);
  }
  return answer;
}

worker.onmessage = ({ data }) => {
  if (data.type === "ready") { state.modelReady(data); return; }
  const waiting = state.pending.get(data.id);
  if (!waiting) return;
  state.pending.delete(data.id);
  if (data.type === "error") waiting.reject(new Error(data.message));
  else waiting.resolve(data);
};

function decode(coords, labels) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject });
    worker.postMessage({ type: "decode", id, key: state.image.sha256, coords, labels });
  });
}

async function loadModel() {
  state.model = await (await api("/api/model")).json();
  const bytes = await (await api(state.model.decoder)).arrayBuffer();
  const ready = new Promise((resolve) => { state.modelReady = resolve; });
  worker.postMessage({ type: "model", bytes }, [bytes]);
  const info = await ready;
  $("model").textContent = `${state.model.name} · weights ${state.model.weights_sha256.slice(0, 12)} · ${info.threads} thread(s)`;
}

const embeddingCache = new Map(); // image id -> Promise<{meta, buffer}>
function fetchEmbedding(image) {
  if (!embeddingCache.has(image.id)) {
    embeddingCache.set(image.id, api(`/api/images/${image.id}/embedding`).then(async (answer) => ({
      meta: JSON.parse(answer.headers.get("X-Segany-Embedding")), buffer: await answer.arrayBuffer(),
    })));
    while (embeddingCache.size > 4) embeddingCache.delete(embeddingCache.keys().next().value);
  }
  return embeddingCache.get(image.id);
}

async function openImage(index) {
  state.index = (index + state.images.length) % state.images.length;
  const image = state.images[state.index];
  status(`Loading ${image.file_name}…`);
  const [blob, embedding] = await Promise.all([
    api(`/api/images/${image.id}/file`).then((a) => a.blob()),
    fetchEmbedding(image),
  ]);
  const bitmap = await createImageBitmap(blob);
  state.image = image;
  state.meta = embedding.meta;
  worker.postMessage({ type: "embedding", key: image.sha256, buffer: embedding.buffer.slice(0), shape: embedding.meta.shape });
  for (const canvas of [$("picture"), $("mask")]) { canvas.width = image.width; canvas.height = image.height; }
  $("picture").getContext("2d").drawImage(bitmap, 0, 0);
  fit();
  clearPrompts();
  $("where").textContent = `${image.file_name} (${state.index + 1}/${state.images.length}) · ${image.width}x${image.height}`;
  status("Click an object: left adds, right or Shift+click removes. N commits, Esc clears, A/D change image.");
  const next = state.images[(state.index + 1) % state.images.length];
  if (next !== image) fetchEmbedding(next); // the next image's embedding, ahead of time
  await refreshCommitted();
}

// Show the image as large as the stage allows (masks keep the image's resolution).
function fit() {
  if (!state.image) return;
  const stage = $("stage").getBoundingClientRect();
  const scale = Math.min(stage.width / state.image.width, stage.height / state.image.height);
  for (const canvas of [$("picture"), $("mask")]) {
    canvas.style.width = `${Math.floor(state.image.width * scale)}px`;
    canvas.style.height = `${Math.floor(state.image.height * scale)}px`;
  }
}

function clearPrompts() {
  state.points = []; state.labels = []; state.box = null; state.mask = null; state.best = null;
  state.preview = null;
  drawMask();
}

async function addPoint(x, y, positive) {
  state.points.push([x, y]);
  state.labels.push(positive ? 1 : 0);
  await runDecoder();
}

async function setBox(start, end) {
  state.box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]),
               Math.max(start[0], end[0]), Math.max(start[1], end[1])];
  await runDecoder();
}

// Decode points (with labels) and/or a box (XYXY) given in image pixels, as SAM's
// predictor does: a box is two corner points labelled 2 and 3, and without a box a
// padding point labelled -1 is added. One point alone: the best of the three multimask
// outputs; anything more: the single-mask output.
async function decodePrompt(points, pointLabels, box) {
  const [H, W] = state.meta.original_size, [inH, inW] = state.meta.input_size;
  const coords = [], labels = [...pointLabels];
  for (const [x, y] of points) coords.push(x * (inW / W), y * (inH / H));
  if (box) {
    coords.push(box[0] * (inW / W), box[1] * (inH / H), box[2] * (inW / W), box[3] * (inH / H));
    labels.push(2, 3);
  } else {
    coords.push(0, 0); labels.push(-1);
  }
  const answer = await decode(coords, labels);
  const L = answer.lowSize, plane = L * L;
  let best = 0;
  if (points.length === 1 && !box) {
    best = 1;
    for (let k = 2; k < answer.iou.length; k++) if (answer.iou[k] > answer.iou[best]) best = k;
  }
  const logits = upscale(answer.masks.subarray(best * plane, (best + 1) * plane), L, state.model.input_size, [inH, inW], [H, W]);
  return { mask: threshold(logits, state.model.mask_threshold), best, iou: answer.iou[best], ms: answer.ms };
}

async function runDecoder() {
  const answer = await decodePrompt(state.points, state.labels, state.box);
  state.mask = answer.mask;
  state.preview = null;
  state.best = { index: answer.best, iou: answer.iou };
  state.lastMs = answer.ms;
  state.decodes += 1;
  $("timing").textContent = `decoder ${answer.ms.toFixed(1)} ms · IoU ${answer.iou.toFixed(3)}`;
  drawMask();
}

// The mask under the cursor, before any click (skipped while a decode is running).
async function hover(x, y) {
  if (state.hovering || state.points.length || state.box) return;
  state.hovering = true;
  try {
    const answer = await decodePrompt([[x, y]], [1], null);
    if (!state.points.length && !state.box) { state.preview = answer.mask; drawMask(); }
  } finally {
    state.hovering = false;
  }
}

function paint(ctx, mask, rgb, alpha) {
  const pixels = ctx.createImageData(ctx.canvas.width, ctx.canvas.height);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) { pixels.data[4 * i] = rgb[0]; pixels.data[4 * i + 1] = rgb[1]; pixels.data[4 * i + 2] = rgb[2]; pixels.data[4 * i + 3] = alpha; }
  }
  ctx.putImageData(pixels, 0, 0);
}

function drawMask(dragBox = null) {
  const canvas = $("mask"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const alpha = Math.round(255 * Number($("opacity").value));
  if (state.mask) paint(ctx, state.mask, [30, 144, 255], alpha);
  else if (state.preview) paint(ctx, state.preview, [255, 200, 40], Math.round(alpha / 2));
  const line = Math.max(2, canvas.width / 400);
  for (const box of [state.box, dragBox]) {
    if (!box) continue;
    ctx.strokeStyle = "#ffd02a"; ctx.lineWidth = line;
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
  }
  for (let k = 0; k < state.points.length; k++) {
    const [x, y] = state.points[k];
    ctx.beginPath();
    ctx.arc(x, y, Math.max(3, canvas.width / 200), 0, 2 * Math.PI);
    ctx.fillStyle = state.labels[k] ? "#2ecc71" : "#e74c3c";
    ctx.fill();
  }
}

async function commit() {
  if (!state.mask) return;
  const body = {
    image_id: state.image.id,
    category_id: Number($("label").value),
    segmentation: toRle(state.mask, state.image.height, state.image.width),
    stage: "manual",
    prompts: { points: state.points, labels: state.labels, box: state.box },
    model_name: state.model.name,
    weights_sha256: state.model.weights_sha256,
    predicted_iou: state.best.iou,
  };
  await api(`/api/projects/${state.project.id}/annotations`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
    body: JSON.stringify(body),
  });
  clearPrompts();
  await refreshCommitted();
  status("Committed.");
}

async function history(action) {
  await api(`/api/projects/${state.project.id}/${action}`, { method: "POST" });
  await refreshCommitted();
  status(action === "undo" ? "Undone." : "Redone.");
}

async function refreshCommitted() {
  const rows = await (await api(`/api/projects/${state.project.id}/annotations?image_id=${state.image.id}`)).json();
  const names = new Map(state.project.categories.map((c) => [c.id, c.name]));
  $("committed").replaceChildren(...rows.map((row) => {
    const item = document.createElement("li");
    item.textContent = `#${row.id} ${names.get(row.category_id) || row.category_id} · ${row.area} px · ${row.model_name || "?"} ${row.weights_sha256 ? row.weights_sha256.slice(0, 8) : ""}`;
    return item;
  }));
  state.committed = rows;
}

function imagePoint(event) {
  const rect = $("mask").getBoundingClientRect();
  return [(event.clientX - rect.left) * (state.image.width / rect.width), (event.clientY - rect.top) * (state.image.height / rect.height)];
}

function wire() {
  const layer = $("mask");
  layer.addEventListener("contextmenu", (event) => event.preventDefault());
  // a click adds a point; a drag (over 5 screen pixels) draws a box
  let drag = null;
  const failed = (error) => status(String(error.message || error), "error");
  layer.addEventListener("mousedown", (event) => {
    if (!state.image) return;
    drag = { start: imagePoint(event), screen: [event.clientX, event.clientY], positive: event.button === 0 && !event.shiftKey, end: null };
  });
  layer.addEventListener("mousemove", (event) => {
    if (!state.image) return;
    const point = imagePoint(event);
    if (!drag) { hover(...point).catch(() => {}); return; }
    if (Math.hypot(event.clientX - drag.screen[0], event.clientY - drag.screen[1]) > 5) {
      drag.end = point;
      const [a, b] = [drag.start, drag.end];
      drawMask([Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])]);
    }
  });
  window.addEventListener("mouseup", () => {
    if (!drag) return;
    const done = drag;
    drag = null;
    if (done.end) setBox(done.start, done.end).catch(failed);
    else addPoint(...done.start, done.positive).catch(failed);
  });
  $("opacity").addEventListener("input", drawMask);
  window.addEventListener("resize", fit);
  $("commit").addEventListener("click", () => commit());
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "SELECT" || event.target.tagName === "INPUT") return;
    const key = event.key.toLowerCase();
    if ((event.ctrlKey || event.metaKey) && key === "z") { event.preventDefault(); history(event.shiftKey ? "redo" : "undo"); }
    else if (key === "n") commit();
    else if (key === "escape") clearPrompts();
    else if (key === "a") openImage(state.index - 1);
    else if (key === "d") openImage(state.index + 1);
  });
  $("relogin").addEventListener("click", () => { location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`; });
}

async function main() {
  if (!token) { location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`; return; }
  wire();
  const projects = await (await api("/api/projects")).json();
  const wanted = Number(params.get("project"));
  state.project = projects.find((p) => p.id === wanted) || projects[0];
  if (!state.project) { status("No project yet: create one with segany project create, or POST /api/projects."); return; }
  $("project").textContent = state.project.name;
  $("label").replaceChildren(...state.project.categories.map((c) => new Option(c.name, c.id)));
  state.images = await (await api(`/api/projects/${state.project.id}/images`)).json();
  if (!state.images.length) { status("This project has no images yet."); return; }
  await loadModel();
  await openImage(0);
}

// What the browser tests drive and read.
window.seganyApp = {
  ready: main().then(() => true, (error) => { status(String(error.message || error), "error"); return false; }),
  state,
  openImage,
  commit,
  history,
  // the current mask at the image's resolution, one byte a pixel, base64
  mask: () => {
    const bytes = state.mask || new Uint8Array(state.image.width * state.image.height);
    let text = "";
    for (let i = 0; i < bytes.length; i += 32768) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
    return { width: state.image.width, height: state.image.height, data: btoa(text) };
  },
};
