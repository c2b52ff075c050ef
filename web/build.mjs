// Build the annotation page into the package: node build.mjs OUT_DIR
// Bundles src/app.js and src/worker.js (with onnxruntime-web) and copies the page, its
// stylesheet and onnxruntime-web's WASM runtime next to them.
import { build } from "esbuild";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) { console.error("usage: node build.mjs OUT_DIR"); process.exit(2); }
await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: join(here, "src/app.js"), worker: join(here, "src/worker.js") },
  bundle: true, format: "esm", minify: true, outdir: out, logLevel: "warning",
  external: ["*.wasm"],
});
const dist = join(here, "node_modules/onnxruntime-web/dist");
for (const name of ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"]) {
  await copyFile(join(dist, name), join(out, name));
}
for (const name of ["index.html", "app.css"]) await copyFile(join(here, "app", name), join(out, name));
await writeFile(join(out, ".built"), new Date().toISOString());
