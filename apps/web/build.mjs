#!/usr/bin/env node
// Builds the dashboard into dist/: dist/assets/<name>-<hash>.{js,css,svg} (served with long cache
// headers: a new build has new names) plus .gz and .br beside each, and dist/index.html, which names
// them (served for every page path, never cached). Offline: esbuild and the sources only.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
// SLIPWAY_WEB_OUT builds elsewhere (a test run of its own, served with SLIPWAY_WEB_DIR): the default is the package's dist/.
const dist = process.env.SLIPWAY_WEB_OUT ? path.resolve(process.env.SLIPWAY_WEB_OUT) : path.join(here, "dist");
const assets = path.join(dist, "assets");
rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  minify: true,
  format: "esm",
  // Pages with a large library of their own (the terminal's xterm, the metrics page's uPlot) are
  // imported with import() and land in chunks of their own: the first page never loads them.
  splitting: true,
  chunkNames: "chunk-[hash]",
  // Browsers of the last two years: native ESM, optional chaining, EventSource, :focus-visible.
  target: ["es2022", "chrome111", "firefox111", "safari16.4"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: assets,
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  sourcemap: "linked",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

/** dist-relative URL of the output that `match` picks. */
function output(match) {
  const file = Object.keys(result.metafile.outputs).find(match);
  if (!file) throw new Error("build: an expected output is missing");
  return "/" + path.relative(dist, path.resolve(here, file)).split(path.sep).join("/");
}
const entry = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === "src/main.tsx");
if (!entry?.[1].cssBundle) throw new Error("build: the entry point's script or style sheet is missing");
const js = output((f) => f === entry[0]);
const css = output((f) => f === entry[1].cssBundle);

const icon = readFileSync(path.join(here, "src/favicon.svg"));
const iconName = `favicon-${createHash("sha256").update(icon).digest("hex").slice(0, 8).toUpperCase()}.svg`;
writeFileSync(path.join(assets, iconName), icon);

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>Slipway</title>
<link rel="icon" type="image/svg+xml" href="/assets/${iconName}">
<link rel="stylesheet" href="${css}">
<script type="module" src="${js}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The Slipway dashboard needs JavaScript. The API is at /v1, its documentation at /docs.</noscript>
</body>
</html>
`;
writeFileSync(path.join(dist, "index.html"), html);

// Compressed copies, served by @fastify/static (preCompressed) to clients that accept them.
const outputs = Object.keys(result.metafile.outputs).filter((f) => !f.endsWith(".map")).map((f) => "/" + path.relative(dist, path.resolve(here, f)).split(path.sep).join("/"));
for (const file of [...outputs, `/assets/${iconName}`]) {
  const full = path.join(dist, file);
  const body = readFileSync(full);
  writeFileSync(`${full}.gz`, gzipSync(body, { level: 9 }));
  writeFileSync(`${full}.br`, brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
}
