// Run segany's exported decoder.onnx in onnxruntime-web (its WebAssembly backend, the one
// browsers use) under Node, for tests: node run_decoder.mjs decoder.onnx inputs.json out.json
// inputs.json: {name: {dims: [...], data: [...]}}; out.json gets the outputs the same way.
import { readFile, writeFile } from "node:fs/promises";
import * as ort from "onnxruntime-web";

const [modelPath, inputPath, outputPath] = process.argv.slice(2);
if (!outputPath) {
  console.error("usage: node run_decoder.mjs decoder.onnx inputs.json out.json");
  process.exit(2);
}
ort.env.wasm.numThreads = 1;
const session = await ort.InferenceSession.create(await readFile(modelPath), {
  executionProviders: ["wasm"],
});
const given = JSON.parse(await readFile(inputPath, "utf8"));
const feeds = {};
for (const [name, { dims, data }] of Object.entries(given)) {
  feeds[name] = new ort.Tensor("float32", Float32Array.from(data), dims);
}
const results = await session.run(feeds);
const out = {};
for (const [name, tensor] of Object.entries(results)) {
  out[name] = { dims: tensor.dims, data: Array.from(tensor.data) };
}
await writeFile(outputPath, JSON.stringify(out));
