// Builds what the Python package serves, so that `pip install` alone serves the demos (no Node
// at install or run time): the two demo editors bundled with esbuild into
// server/static/bundles/, and the protocol client copied unchanged to server/static/client.js
// (the URL the web editor at / and integrators already import from).
//
// The output is byte-for-byte reproducible (pinned esbuild and libraries from package-lock.json,
// no timestamps, no absolute paths): tests/browser/test_web_package.py rebuilds into a temporary
// folder and compares with the committed files. `node build.mjs --outdir DIR` writes there
// instead of into server/static.

import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const flag = process.argv.indexOf("--outdir");
const staticDir = flag >= 0 ? resolve(process.argv[flag + 1]) : resolve(here, "../server/static");

await mkdir(join(staticDir, "bundles"), { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: { codemirror: "demo/codemirror.js", prosemirror: "demo/prosemirror.js" },
  outdir: join(staticDir, "bundles"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});
await copyFile(join(here, "src/client.js"), join(staticDir, "client.js"));
