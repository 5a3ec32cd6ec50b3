#!/usr/bin/env node
// Fails when the TypeScript sources import each other in a cycle (part of `npm run lint`).
// Type-only imports count too: a cycle of types is still two modules that cannot be
// understood, tested or moved apart (eslint-plugin-import-x's no-cycle skips them).
// Imports are read with TypeScript's pre-processor (imports, re-exports, import());
// relative `./x.js` resolves to the `./x.ts` beside it. Packages import each other only
// through their entry points (the entry-points lint rule), so cycles are looked for
// inside each package's sources.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE_DIRS = ["packages", "apps"].flatMap((d) => fs.readdirSync(path.join(ROOT, d)).map((p) => path.join(d, p, "src"))).concat("test/src");
const SKIP = new Set(["node_modules", "dist", "gen"]);

function tsFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return SKIP.has(e.name) ? [] : tsFiles(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

const files = SOURCE_DIRS.flatMap((d) => tsFiles(path.join(ROOT, d)));
const known = new Set(files);
/** file → the files of this repository it imports. */
const graph = new Map(
  files.map((f) => {
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(f, "utf8"), true, true);
    const deps = importedFiles
      .filter((i) => i.fileName.startsWith("."))
      .map((i) => path.resolve(path.dirname(f), i.fileName).replace(/\.js$/, ".ts"))
      .filter((t) => known.has(t));
    return [f, [...new Set(deps)]];
  }),
);

/** Strongly connected components with more than one file (Tarjan), or a file importing itself. */
function cycles() {
  let next = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) !== index.get(v)) return;
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v).includes(v)) found.push(component);
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return found;
}

/** One concrete loop through a component, for the message: a → b → c → a. */
function loopThrough(component) {
  const inside = new Set(component);
  const start = component.slice().sort()[0];
  const from = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v)) {
      if (w === start) {
        const loop = [start];
        for (let x = v; x !== start; x = from.get(x)) loop.splice(1, 0, x);
        return [...loop, start];
      }
      if (inside.has(w) && !from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  return component;
}

const found = cycles();
for (const c of found) {
  const rel = (f) => path.relative(ROOT, f);
  const loop = loopThrough(c);
  console.error(`import cycle: ${loop.map(rel).join(" → ")}`);
  if (loop.length - 1 < c.length) console.error(`  (${c.length} files in this cycle: ${c.map(rel).sort().join(", ")})`);
}
if (found.length > 0) {
  console.error(`\n${found.length} import cycle${found.length === 1 ? "" : "s"}: move what both sides share into a module of its own.`);
  process.exit(1);
}
