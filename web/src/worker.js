// The decoder in a Web Worker: onnxruntime-web (WASM) on the server's cached embedding.
// Messages in: {type: "model", bytes} | {type: "embedding", key, buffer, shape} |
// {type: "decode", id, key, coords, labels}. Out: {type: "ready"} | {type: "decoded", id,
// masks (Float32Array 4*L*L), iou (Float32Array 4), lowSize, ms} | {type: "error", id, message}.
import * as ort from "onnxruntime-web/wasm"; // the WASM build only (no WebGPU)

ort.env.wasm.wasmPaths = new URL("./", self.location.href).href;
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(2, navigator.hardwareConcurrency || 1) : 1;

let session = null;
const embeddings = new Map(); // key -> ort.Tensor, the few most recent

// One message at a time: onnxruntime-web must not run the session twice at once (a hover
// decode still running when a click arrives), and a run's time is then its own.
let queue = Promise.resolve();
self.onmessage = ({ data }) => { queue = queue.then(() => handle(data)); };

async function handle(data) {
  try {
    if (data.type === "model") {
      session = await ort.InferenceSession.create(new Uint8Array(data.bytes), {
        executionProviders: ["wasm"], graphOptimizationLevel: "all",
      });
      self.postMessage({ type: "ready", threads: ort.env.wasm.numThreads });
    } else if (data.type === "embedding") {
      embeddings.set(data.key, new ort.Tensor("float32", new Float32Array(data.buffer), data.shape));
      while (embeddings.size > 4) embeddings.delete(embeddings.keys().next().value);
    } else if (data.type === "decode") {
      const embedding = embeddings.get(data.key);
      if (!session || !embedding) throw new Error("the decoder or the embedding is not loaded yet");
      const n = data.labels.length;
      const low = embedding.dims[2] * 4;
      const feeds = {
        image_embeddings: embedding,
        point_coords: new ort.Tensor("float32", Float32Array.from(data.coords), [1, n, 2]),
        point_labels: new ort.Tensor("float32", Float32Array.from(data.labels), [1, n]),
        mask_input: new ort.Tensor("float32", new Float32Array(low * low), [1, 1, low, low]),
        has_mask_input: new ort.Tensor("float32", new Float32Array(1), [1]),
      };
      const start = performance.now();
      const out = await session.run(feeds);
      const ms = performance.now() - start;
      const masks = out.low_res_masks.data, iou = out.iou_predictions.data;
      self.postMessage({ type: "decoded", id: data.id, masks, iou, lowSize: out.low_res_masks.dims[2], ms });
    }
  } catch (error) {
    self.postMessage({ type: "error", id: data.id, message: String(error && error.message || error) });
  }
}
