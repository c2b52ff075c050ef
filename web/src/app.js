// segany's annotation page: the image, the decoder in a worker, clicks -> masks, commits.
// State lives in the server; this page keeps only the current prompts and mask.
import { threshold, toRle, upscale } from "./masks.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token") || localStorage.getItem("segany.token");
if (params.get("token")) localStorage.setItem("segany.token", params.get("token"));

const state = {
  model: null, project: null, images: [], index: 0, image: null, meta: null,
  points: [], labels: [], mask: null, best: null, lastMs: null, decodes: 0, pending: new Map(),
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
  state.points = []; state.labels = []; state.mask = null; state.best = null;
  drawMask();
}

async function addPoint(x, y, positive) {
  state.points.push([x, y]);
  state.labels.push(positive ? 1 : 0);
  await runDecoder();
}

async function runDecoder() {
  const [H, W] = state.meta.original_size, [inH, inW] = state.meta.input_size;
  const coords = [], labels = [...state.labels];
  for (const [x, y] of state.points) coords.push(x * (inW / W), y * (inH / H));
  coords.push(0, 0); labels.push(-1); // the padding point, as SAM's predictor adds it
  const answer = await decode(coords, labels);
  const L = answer.lowSize, plane = L * L;
  // one click: the best of the three multimask outputs; more clicks: the single-mask output
  let best = 0;
  if (state.points.length === 1) {
    best = 1;
    for (let k = 2; k < answer.iou.length; k++) if (answer.iou[k] > answer.iou[best]) best = k;
  }
  const logits = upscale(answer.masks.subarray(best * plane, (best + 1) * plane), L, state.model.input_size, [inH, inW], [H, W]);
  state.mask = threshold(logits, state.model.mask_threshold);
  state.best = { index: best, iou: answer.iou[best] };
  state.lastMs = answer.ms;
  state.decodes += 1;
  $("timing").textContent = `decoder ${answer.ms.toFixed(1)} ms · IoU ${answer.iou[best].toFixed(3)}`;
  drawMask();
}

function drawMask() {
  const canvas = $("mask"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.mask) return;
  const pixels = ctx.createImageData(canvas.width, canvas.height);
  const alpha = Math.round(255 * Number($("opacity").value));
  for (let i = 0; i < state.mask.length; i++) {
    if (state.mask[i]) { pixels.data[4 * i] = 30; pixels.data[4 * i + 1] = 144; pixels.data[4 * i + 2] = 255; pixels.data[4 * i + 3] = alpha; }
  }
  ctx.putImageData(pixels, 0, 0);
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
    prompts: { points: state.points, labels: state.labels },
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
  layer.addEventListener("mousedown", (event) => {
    if (!state.image) return;
    const [x, y] = imagePoint(event);
    addPoint(x, y, event.button === 0 && !event.shiftKey).catch((error) => status(String(error.message), "error"));
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
  mask: () => ({ width: state.image.width, height: state.image.height, data: Array.from(state.mask || []) }),
};
