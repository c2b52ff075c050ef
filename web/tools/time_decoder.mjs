// Time a decoder.onnx in onnxruntime-web (the WASM backend browsers use) under Node:
//   node time_decoder.mjs decoder.onnx [threads=1] [runs=24] [points=2] [embedding.f32]
// One prompt of `points` points (the last one SAM's padding point), no mask input, on the
// given raw little-endian float32 1x256x64x64 embedding (random without one); inputs the
// graph has beyond segany's (the official export's orig_im_size) are fed too. Prints one
// JSON line: the median and p95 of `runs` timed runs after one warm-up run.
import { readFile } from "node:fs/promises";
import * as ort from "onnxruntime-web";

const [modelPath, threads = "1", runs = "24", points = "2", embeddingPath = ""] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: node time_decoder.mjs decoder.onnx [threads] [runs] [points] [embedding.f32]");
  process.exit(2);
}
ort.env.wasm.numThreads = Number(threads);
const session = await ort.InferenceSession.create(await readFile(modelPath), {
  executionProviders: ["wasm"], graphOptimizationLevel: "all",
});
const n = Number(points);
const embedding = embeddingPath
  ? new Float32Array((await readFile(embeddingPath)).buffer.slice(0))
  : Float32Array.from({ length: 256 * 64 * 64 }, () => Math.random() - 0.5);
const feeds = {
  image_embeddings: new ort.Tensor("float32", embedding, [1, 256, 64, 64]),
  point_coords: new ort.Tensor("float32", Float32Array.from({ length: 2 * n }, (_, i) => 300 + 40 * i), [1, n, 2]),
  point_labels: new ort.Tensor("float32", Float32Array.from({ length: n }, (_, i) => (i === n - 1 ? -1 : 1)), [1, n]),
  mask_input: new ort.Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]),
  has_mask_input: new ort.Tensor("float32", new Float32Array(1), [1]),
};
if (session.inputNames.includes("orig_im_size")) {
  feeds.orig_im_size = new ort.Tensor("float32", Float32Array.from([768, 1024]), [2]);
}
await session.run(feeds);
const times = [];
for (let i = 0; i < Number(runs); i++) {
  const start = performance.now();
  await session.run(feeds);
  times.push(performance.now() - start);
}
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
console.log(JSON.stringify({ threads: Number(threads), points: n, median: at(0.5), p95: at(0.95) }));
