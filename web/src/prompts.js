// The prompt tool: clicks and boxes go to the decoder, whose mask becomes the current mask
// (with any brush strokes painted over it again); hovering previews the mask under the
// cursor before the first click.
import { decodePrompt } from "./decoder.js";
import { rebuildMask } from "./edits.js";
import { showCurrent } from "./panel.js";
import { state } from "./state.js";
import { maskChanged, previewChanged, previewSize, setDragBox } from "./view.js";

// Forget the prompts, the mask and its strokes (Esc).
export function clearPrompts() {
  state.points = []; state.labels = []; state.box = null;
  state.decoded = null; state.mask = null; state.best = null; state.strokes = []; state.preview = null;
  state.editing = null;
  setDragBox(null);
  maskChanged();
  previewChanged();
  showCurrent();
}

export async function addPoint(x, y, positive) {
  state.points.push([x, y]);
  state.labels.push(positive ? 1 : 0);
  await runDecoder();
}

export async function setBox(start, end) {
  state.box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]),
               Math.max(start[0], end[0]), Math.max(start[1], end[1])];
  await runDecoder();
}

// Decode the prompts at the image's resolution; the strokes are painted over the result.
export async function runDecoder() {
  const image = state.image;
  const start = performance.now();
  const answer = await decodePrompt(state.points, state.labels, state.box);
  if (state.image !== image) return; // another image was opened meanwhile
  state.decoded = answer.mask;
  state.preview = null;
  state.best = { index: answer.best, iou: answer.iou };
  state.lastMs = answer.ms;
  rebuildMask();
  state.perf.decode = performance.now() - start;
  state.decodes += 1;
  showCurrent();
}

// The mask under the cursor, before any click (skipped while a decode is running), at the
// view's resolution: on a large image a preview costs what it costs on a small one.
export async function hover(x, y) {
  if (state.hovering || state.points.length || state.box || state.mask) return;
  state.hovering = true;
  const image = state.image;
  try {
    const answer = await decodePrompt([[x, y]], [1], null, previewSize());
    if (state.image === image && !state.points.length && !state.box && !state.mask) {
      state.preview = { data: answer.mask, width: answer.width, height: answer.height };
      previewChanged();
    }
  } finally {
    state.hovering = false;
  }
}
