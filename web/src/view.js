// The view: the image scaled to fit the stage, and over it one canvas (#mask) where masks,
// prompts and the brush are drawn at the view's resolution. Masks are kept at the image's
// resolution elsewhere; here they are sampled into layers (layers.js) when they change, or
// drawn as polygon outlines (outline.js) in the polygon view.
import { MaskLayer, word } from "./layers.js";
import { outlines } from "./outline.js";
import { state } from "./state.js";

const $ = (id) => document.getElementById(id);
export const CURRENT = [30, 144, 255], PREVIEW = [255, 200, 40], PROPOSED = [255, 120, 0];
const PALETTE = [[230, 25, 75], [60, 180, 75], [245, 130, 49], [145, 30, 180], [240, 50, 230],
                 [0, 150, 136], [170, 110, 40], [128, 0, 0], [110, 130, 20], [0, 0, 128]];
export const colorOf = (k) => PALETTE[k % PALETTE.length];
export const css = ([r, g, b]) => `rgb(${r}, ${g}, ${b})`;

const layers = {
  committed: new MaskLayer(), proposals: new MaskLayer(), current: new MaskLayer(), preview: new MaskLayer(),
};
let committed = []; // [{row, mask, box, color, rings}] of the open image (masks: box crops)
let proposals = [], proposalSource = null, selectedProposal = -1; // the same, proposed
let currentRings = null;
let dragBox = null, cursor = null, frame = 0;

// The view's size in device pixels (the canvases' backing store).
const viewSize = () => [$("mask").width, $("mask").height];

// Size the canvases to show the whole image as large as the stage allows, draw the image
// and repaint the layers. Called on opening an image and when the window is resized.
export function fit() {
  const picture = $("picture"), overlay = $("mask");
  if (!state.image) {
    for (const canvas of [picture, overlay]) { canvas.width = canvas.height = 0; canvas.style.width = canvas.style.height = "0"; }
    return;
  }
  const { width: W, height: H } = state.image;
  const stage = $("stage").getBoundingClientRect();
  const scale = Math.min(stage.width / W, stage.height / H);
  const cssW = Math.max(1, Math.floor(W * scale)), cssH = Math.max(1, Math.floor(H * scale));
  const dpr = window.devicePixelRatio || 1;
  for (const canvas of [picture, overlay]) {
    canvas.style.width = `${cssW}px`;
    canvas.style.height = `${cssH}px`;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = picture.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  if (state.bitmap) ctx.drawImage(state.bitmap, 0, 0, picture.width, picture.height);
  for (const layer of Object.values(layers)) layer.resize(overlay.width, overlay.height);
  drawCommitted();
  drawProposals();
  maskChanged();
  previewChanged();
}

// The current mask (state.mask) changed; with `rect` [x0, y0, x1, y1) only there.
export function maskChanged(rect = null) {
  currentRings = null;
  if (state.mask && state.image) {
    layers.current.draw([{ mask: state.mask, color: word(CURRENT) }], state.image.width, state.image.height, rect);
  }
  request();
}

export function previewChanged() {
  const p = state.preview;
  if (p) layers.preview.draw([{ mask: p.data, color: word(PREVIEW) }], p.width, p.height);
  request();
}

function drawCommitted() {
  const entries = committed.map(({ mask, box, color }) => ({ mask, box, color: word(color) }));
  layers.committed.draw(entries, state.image.width, state.image.height);
}

function drawProposals() {
  const entries = proposals.map(({ mask, box }) => ({ mask, box, color: word(PROPOSED) }));
  layers.proposals.draw(entries, state.image.width, state.image.height);
}

// The proposed masks of the open image under review ([{row, mask, box}] as below) and which
// one is selected: all are shown in orange, the selected one outlined.
export function setProposals(entries, selected) {
  if (entries !== proposalSource) {
    proposalSource = entries;
    proposals = entries.map((entry) => ({ ...entry, rings: null }));
    if (state.image) drawProposals();
  }
  selectedProposal = selected;
  request();
}

function proposalRings(entry) {
  const [x0, y0, w, h] = entry.box;
  entry.rings ||= outlines(entry.mask, w, h).map((ring) => ring.map(([x, y]) => [x + x0, y + y0]));
  return entry.rings;
}

// The committed masks of the open image: [{row, mask, box}], each mask the crop `box`
// [x0, y0, w, h] of the image (its bounding box).
export function setCommitted(entries) {
  committed = entries.map((entry, k) => ({ ...entry, color: colorOf(k), rings: null }));
  if (state.image) drawCommitted();
  request();
  return committed;
}

// The size to decode the hover preview at: the view's, at most the image's. [h, w]
export function previewSize() {
  const [w, h] = viewSize();
  return [Math.min(h, state.image.height), Math.min(w, state.image.width)];
}

export function setDragBox(box) { dragBox = box; request(); }
export function setCursor(point) { cursor = point; request(); }

// Image pixel coordinates of a mouse event over the view.
export function toImage(event) {
  const rect = $("mask").getBoundingClientRect();
  return [(event.clientX - rect.left) * (state.image.width / rect.width),
          (event.clientY - rect.top) * (state.image.height / rect.height)];
}

// Draw at the next frame (many changes in one frame draw once).
export function request() {
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); });
}

// The polygon outlines of the current mask, and of the committed masks (each computed once,
// when the polygon view first needs it).
export function currentOutlines() {
  if (!state.mask) return [];
  if (!currentRings) {
    const start = performance.now();
    currentRings = outlines(state.mask, state.image.width, state.image.height);
    state.perf.outline = performance.now() - start;
  }
  return currentRings;
}
export function committedOutlines() {
  for (const entry of committed) {
    const [x0, y0, w, h] = entry.box;
    entry.rings ||= outlines(entry.mask, w, h).map((ring) => ring.map(([x, y]) => [x + x0, y + y0]));
  }
  return committed;
}

// Outlines with their vertices: a coloured line on a dark halo (seen on any image), and a
// small square at each vertex.
function drawRings(ctx, rings, color, sx, sy, dpr) {
  ctx.beginPath();
  for (const ring of rings) {
    ring.forEach(([x, y], k) => (k ? ctx.lineTo(x * sx, y * sy) : ctx.moveTo(x * sx, y * sy)));
    ctx.closePath();
  }
  ctx.strokeStyle = "rgba(0, 0, 0, 0.55)";
  ctx.lineWidth = 4 * dpr;
  ctx.stroke();
  ctx.strokeStyle = css(color);
  ctx.lineWidth = 2 * dpr;
  ctx.stroke();
  ctx.lineWidth = 1 * dpr;
  ctx.fillStyle = "#fff";
  const d = 2 * dpr;
  for (const ring of rings) {
    for (const [x, y] of ring) {
      ctx.fillRect(x * sx - d, y * sy - d, 2 * d, 2 * d);
      ctx.strokeRect(x * sx - d, y * sy - d, 2 * d, 2 * d);
    }
  }
}

// A label at the top of a mask's outlines: which model made it.
function tag(ctx, rings, text, color, sx, sy, dpr) {
  let top = null;
  for (const ring of rings) for (const p of ring) if (!top || p[1] < top[1]) top = p;
  if (!top) return;
  ctx.font = `${12 * dpr}px system-ui, sans-serif`;
  const width = ctx.measureText(text).width + 8 * dpr, height = 17 * dpr;
  const x = Math.min(Math.max(0, top[0] * sx - width / 2), ctx.canvas.width - width);
  const y = Math.max(0, top[1] * sy - height - 4 * dpr);
  ctx.fillStyle = "rgba(255, 255, 255, 0.9)";
  ctx.fillRect(x, y, width, height);
  ctx.fillStyle = css(color);
  ctx.fillRect(x, y, 3 * dpr, height);
  ctx.fillStyle = "#1d2330";
  ctx.fillText(text, x + 5 * dpr, y + 13 * dpr);
}

// Which model made a mask, shortly: "segany_shapes 1a2b3c4d".
export const madeBy = (name, sha) => (name ? `${name} ${sha ? sha.slice(0, 8) : ""}`.trim() : "by hand");

export function render() {
  const start = performance.now();
  const canvas = $("mask"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.image) return;
  const dpr = window.devicePixelRatio || 1;
  const sx = canvas.width / state.image.width, sy = canvas.height / state.image.height;
  const alpha = Number($("opacity").value);
  if (state.view === "filled") {
    ctx.globalAlpha = alpha * 0.6;
    if (committed.length) ctx.drawImage(layers.committed.canvas, 0, 0);
    ctx.globalAlpha = alpha * 0.5;
    if (proposals.length) ctx.drawImage(layers.proposals.canvas, 0, 0);
    ctx.globalAlpha = alpha;
    if (state.mask) ctx.drawImage(layers.current.canvas, 0, 0);
  } else {
    for (const entry of proposals) drawRings(ctx, proposalRings(entry), PROPOSED, sx, sy, dpr);
    for (const entry of committedOutlines()) {
      drawRings(ctx, entry.rings, entry.color, sx, sy, dpr);
      const made = madeBy(entry.row.model_name, entry.row.weights_sha256);
      tag(ctx, entry.rings, `#${entry.row.id} ${made}`, entry.color, sx, sy, dpr);
    }
    if (state.mask) {
      if (state.stroking) {
        // while a stroke is painted the mask shows filled; its outline follows the stroke's end
        ctx.globalAlpha = alpha / 2; ctx.drawImage(layers.current.canvas, 0, 0); ctx.globalAlpha = 1;
      } else {
        const rings = currentOutlines();
        drawRings(ctx, rings, CURRENT, sx, sy, dpr);
        const edited = state.strokes.length ? " · edited" : "";
        const made = state.best ? madeBy(state.model.name, state.model.weights_sha256) : madeBy(null);
        tag(ctx, rings, `current · ${made}${edited}`, CURRENT, sx, sy, dpr);
      }
    }
  }
  const chosen = proposals[selectedProposal];
  ctx.globalAlpha = 1;
  if (chosen && !state.editing) {
    // the proposal under review: outlined, with its scores and the model that made it
    const rings = proposalRings(chosen);
    drawRings(ctx, rings, PROPOSED, sx, sy, dpr);
    const iou = chosen.row.predicted_iou === null ? "?" : chosen.row.predicted_iou.toFixed(2);
    tag(ctx, rings, `proposed #${chosen.row.id} · IoU ${iou} · ${madeBy(chosen.row.model_name, chosen.row.weights_sha256)}`,
        PROPOSED, sx, sy, dpr);
  }
  ctx.globalAlpha = alpha / 2;
  if (!state.mask && state.preview) ctx.drawImage(layers.preview.canvas, 0, 0);
  ctx.globalAlpha = 1;
  drawPrompts(ctx, sx, sy, dpr);
  state.perf.render = performance.now() - start;
}

function drawPrompts(ctx, sx, sy, dpr) {
  ctx.lineWidth = 2 * dpr;
  for (const box of [state.box, dragBox]) {
    if (!box) continue;
    ctx.strokeStyle = "#ffd02a";
    ctx.strokeRect(box[0] * sx, box[1] * sy, (box[2] - box[0]) * sx, (box[3] - box[1]) * sy);
  }
  for (let k = 0; k < state.points.length; k++) {
    const [x, y] = state.points[k];
    ctx.beginPath();
    ctx.arc(x * sx, y * sy, 5 * dpr, 0, 2 * Math.PI);
    ctx.fillStyle = state.labels[k] ? "#2ecc71" : "#e74c3c";
    ctx.fill();
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
  if (cursor && state.tool !== "prompt") {
    // the brush: a circle of its radius in image pixels, white on black to show on any image
    ctx.beginPath();
    ctx.arc(cursor[0] * sx, cursor[1] * sy, Math.max(1, state.brushRadius * sx), 0, 2 * Math.PI);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 3 * dpr; ctx.stroke();
    ctx.strokeStyle = state.tool === "eraser" ? "#ffb3b3" : "#fff"; ctx.lineWidth = 1.5 * dpr; ctx.stroke();
  }
}
