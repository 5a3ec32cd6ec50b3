// The local side of `slipway pull media` / `push media`: a folder of files, read into a tar stream
// and written from one. A media tar's entries are named by object keys relative to the
// environment's media root (core's media-archive.ts), and nothing taken from one is ever written
// outside the folder: names are checked, every folder on the way is checked not to be a link,
// and files are opened without following one.
import { constants, createReadStream } from "node:fs";
import { lstat, mkdir, open, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import tar from "tar-stream";
import { mediaEntryKey, mediaEntryTypeProblem } from "@slipway/core";
import { CommandError } from "./config.js";

/** One file of a folder to push. */
export interface FolderFile {
  /** Its name in the tar: the path below the folder, `/`-separated. */
  name: string;
  path: string;
  size: number;
  mtime: Date;
}

/** Whether `dir` is missing, an empty folder or a folder with something in it; anything else is refused. */
export async function folderState(dir: string, shown: string): Promise<"missing" | "empty" | "not-empty"> {
  const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw new CommandError(`cannot read ${shown}: ${err.message}`);
  });
  if (!st) return "missing";
  if (!st.isDirectory()) throw new CommandError(`${shown} is not a folder`);
  return (await readdir(dir)).length === 0 ? "empty" : "not-empty";
}

/**
 * Every regular file below `dir`, sorted by name, with the total of their sizes. Links, sockets,
 * fifos and devices are refused (a media archive holds regular files only, and a link could
 * send what it points to), as are names the platform takes no object by (mediaEntryKey).
 */
export async function listFolder(dir: string, shown: string): Promise<{ files: FolderFile[]; bytes: number }> {
  const files: FolderFile[] = [];
  let bytes = 0;
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const name = rel ? `${rel}/${e.name}` : e.name;
      const where = `${shown.replace(/\/+$/, "")}/${name}`;
      if (e.isDirectory()) {
        await walk(name);
        continue;
      }
      if (!e.isFile()) throw new CommandError(`${where} is ${e.isSymbolicLink() ? "a symbolic link" : "not a regular file"}: push media sends regular files and folders only (replace it with a copy of what it is, or move it out)`);
      const k = mediaEntryKey(name, "file");
      if ("problem" in k) throw new CommandError(`${where}: ${k.problem.replace(/^the entry /, "the name ")}, which the platform takes no object by`);
      const st = await lstat(path.join(dir, name));
      files.push({ name, path: path.join(dir, name), size: st.size, mtime: st.mtime });
      bytes += st.size;
    }
  };
  await walk("");
  return { files, bytes };
}

/**
 * The files as one tar stream, each read as the stream is consumed (never all in memory);
 * `onProgress` is told the bytes and files put in so far. A file that changes size while it is read
 * ends the stream with an error naming it.
 */
export function packFolder(files: FolderFile[], onProgress: (bytes: number, files: number) => void): Readable {
  const pack = tar.pack();
  const produce = async () => {
    let bytes = 0;
    let count = 0;
    for (const f of files) {
      const sink = pack.entry({ name: f.name, type: "file", size: f.size, mode: 0o644, mtime: f.mtime });
      const done = finished(sink);
      done.catch(() => undefined);
      if (f.size > 0) {
        for await (const chunk of createReadStream(f.path, { start: 0, end: f.size - 1 })) {
          bytes += (chunk as Buffer).length;
          onProgress(bytes, count);
          if (!sink.write(chunk)) await drained(sink);
        }
      }
      sink.end(undefined);
      await done.catch((err: Error) => {
        throw /Size mismatch/.test(err.message) ? new CommandError(`${f.name} changed while it was being sent: nothing was stored; try again`) : err;
      });
      onProgress(bytes, ++count);
    }
    pack.finalize();
  };
  void produce().catch((err: unknown) => pack.destroy(err as Error));
  return Readable.from(pack);
}

export interface Extracted {
  /** Regular files written. */
  files: number;
  /** Entries of the tar (files and folders). */
  entries: number;
  bytes: number;
}

/**
 * Writes the media tar `body` into `dir` (which exists): folders are made, files written (an
 * existing file of the same name is overwritten). An entry that is not a regular file or
 * folder, whose name could lead out of `dir`, or whose way there goes through a link or a file,
 * stops the extraction with a CommandError. `onProgress` is told the files and bytes written.
 */
export async function extractTo(dir: string, body: AsyncIterable<Uint8Array>, onProgress: (bytes: number, files: number) => void): Promise<Extracted> {
  const extract = tar.extract();
  const entries = extract[Symbol.asyncIterator]();
  let failure: { err: unknown } | undefined;
  const fail = (err: unknown) => {
    failure ??= { err };
    extract.destroy(err as Error);
  };
  extract.on("error", (err: Error) => void (failure ??= { err: new CommandError(`the media download is not a complete tar (${err.message.replace(/\.$/, "")}): try again`) }));
  const feed = async () => {
    for await (const chunk of body) {
      if (failure) return;
      if (!extract.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) await drained(extract);
    }
    if (!failure) extract.end(undefined);
  };
  void feed().catch((err: unknown) => fail(err));

  const made = new Set<string>();
  const out: Extracted = { files: 0, entries: 0, bytes: 0 };
  try {
    for (;;) {
      const next = await entries.next();
      if (next.done) break;
      const entry = next.value;
      const { name, type } = entry.header;
      const problem = mediaEntryTypeProblem(name, type);
      if (problem) throw new CommandError(`the media hold something no folder should: ${problem}`);
      const k = mediaEntryKey(name, type as "file" | "directory");
      if ("problem" in k) throw new CommandError(`the media hold an object that is no safe file name here: ${k.problem.replace(/^the entry /, "")}`);
      out.entries++;
      if (type === "directory") {
        entry.resume();
        if (k.key) await safeFolder(dir, k.key, made);
        continue;
      }
      const parent = path.posix.dirname(k.key);
      if (parent !== ".") await safeFolder(dir, parent, made);
      const target = path.join(dir, ...k.key.split("/"));
      const fh = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644).catch((err: NodeJS.ErrnoException) => {
        throw new CommandError(err.code === "ELOOP" ? `${k.key} is a symbolic link in the folder: not written through (remove it, or pull into a new folder)` : `cannot write ${k.key}: ${err.message}`);
      });
      try {
        for await (const chunk of entry) {
          await fh.write(chunk as Buffer);
          out.bytes += (chunk as Buffer).length;
          onProgress(out.bytes, out.files);
        }
      } finally {
        await fh.close();
      }
      onProgress(out.bytes, ++out.files);
    }
    if (failure) throw failure.err;
    return out;
  } catch (err) {
    fail(err);
    throw failure!.err;
  }
}

/** Makes the folders of `rel` below `dir`, each checked to be a real folder, not a link or a file. */
async function safeFolder(dir: string, rel: string, made: Set<string>): Promise<void> {
  let at = "";
  for (const part of rel.split("/")) {
    at = at ? `${at}/${part}` : part;
    if (made.has(at)) continue;
    const full = path.join(dir, ...at.split("/"));
    const st = await lstat(full).catch((err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? undefined : Promise.reject(err)));
    if (!st) await mkdir(full, { mode: 0o755 });
    else if (st.isSymbolicLink()) throw new CommandError(`${at} is a symbolic link in the folder: not written through (remove it, or pull into a new folder)`);
    else if (!st.isDirectory()) throw new CommandError(`${at} is a file in the folder, and the media have a folder of that name`);
    made.add(at);
  }
}

/** Removes what a failed pull wrote: the folder itself when the pull made it, else what it holds. */
export async function clearFolder(dir: string, made: boolean): Promise<void> {
  if (made) return rm(dir, { recursive: true, force: true });
  for (const name of await readdir(dir)) await rm(path.join(dir, name), { recursive: true, force: true });
}

/** Resolves when `sink` has taken all it was given, rejects when it is destroyed first. */
function finished(sink: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    sink.once("finish", resolve);
    sink.once("error", reject);
    sink.once("close", () => reject(new Error("the tar stream was closed")));
  });
}

/** Waits until `stream` wants more; rejects when it is closed first. */
function drained(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      stream.off("close", closed);
      resolve();
    };
    const closed = () => {
      stream.off("drain", done);
      reject(new Error("the tar stream was closed"));
    };
    stream.once("drain", done);
    stream.once("close", closed);
  });
}
