// The decoder client: the model's decoder runs in a Web Worker (worker.js, onnxruntime-web)
// on the server's cached embedding of the open image. This module speaks the worker's
// message protocol and turns prompts in image pixels into masks, as SAM's predictor does.
import { api, getJson } from "./api.js";
import { upscale } from "./masks.js";
import { state } from "./state.js";

const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
let nextId = 1;
let modelReady = null;

worker.onmessage = ({ data }) => {
  if (data.type === "ready") { modelReady(data); return; }
  const waiting = state.pending.get(data.id);
  if (!waiting) return;
  state.pending.delete(data.id);
  if (data.type === "error") waiting.reject(new Error(`the decoder failed: ${data.message}`));
  else waiting.resolve(data);
};

function decode(coords, labels) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject });
    worker.postMessage({ type: "decode", id, key: state.image.sha256, coords, labels });
  });
}

// Fetch the served model's description and decoder, and start the decoder in the worker.
// Returns the worker's "ready" message (how many threads it runs).
export async function loadModel() {
  state.model = await getJson("/api/model");
  const bytes = await (await api(state.model.decoder)).arrayBuffer();
  const ready = new Promise((resolve) => { modelReady = resolve; });
  worker.postMessage({ type: "model", bytes }, [bytes]);
  return ready;
}

const embeddings = new Map(); // image id -> Promise<{meta, buffer}>, the few most recent

// An image's embedding from the server (computed there on first request). A failed fetch
// is forgotten, so that opening the image again retries it.
export function fetchEmbedding(image) {
  if (!embeddings.has(image.id)) {
    const fetched = api(`/api/images/${image.id}/embedding`).then(async (answer) => ({
      meta: JSON.parse(answer.headers.get("X-Segany-Embedding")), buffer: await answer.arrayBuffer(),
    }));
    fetched.catch(() => { if (embeddings.get(image.id) === fetched) embeddings.delete(image.id); });
    embeddings.set(image.id, fetched);
    while (embeddings.size > 4) embeddings.delete(embeddings.keys().next().value);
  }
  return embeddings.get(image.id);
}

// Forget the fetched embeddings (the server switched model versions: they are another
// version's).
export function forgetEmbeddings() { embeddings.clear(); }

// Hand an embedding to the worker; later decodes of that image use it.
export function useEmbedding(image, embedding) {
  state.meta = embedding.meta;
  worker.postMessage({ type: "embedding", key: image.sha256, buffer: embedding.buffer.slice(0), shape: embedding.meta.shape });
}

// Decode points (with labels) and/or a box (XYXY) given in image pixels, as SAM's
// predictor does: a box is two corner points labelled 2 and 3, and without a box a
// padding point labelled -1 is added. One point alone: the best of the three multimask
// outputs; anything more: the single-mask output. The mask comes at `size` [h, w]: the
// image's size by default (what is committed); the hover preview asks for the view's.
export async function decodePrompt(points, pointLabels, box, size = null) {
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
  const [h, w] = size || [H, W];
  const start = performance.now();
  const mask = upscale(answer.masks.subarray(best * plane, (best + 1) * plane), L, state.model.input_size,
                       [inH, inW], [h, w], state.model.mask_threshold);
  state.perf.upscale = performance.now() - start;
  return { mask, width: w, height: h, best, iou: answer.iou[best], ms: answer.ms };
}
