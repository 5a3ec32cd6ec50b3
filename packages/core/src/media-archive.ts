// What the media part of a backup looks like on its way through the API (issue 13, the local
// loop): one tar stream whose entries are named by the object keys relative to the
// environment's media root. Shared by the control plane (which writes and reads these streams)
// and the CLI (which packs a folder into one and extracts one into a folder).

/** The media objects inside a backup's location (backupLocation): `<location>media/<key relative to the media root>`. */
export const BACKUP_MEDIA_DIR = "media/";

/** S3's limit on a key, in UTF-8 bytes (the key in the backup store is longer still, by its location). */
export const MEDIA_KEY_MAX_BYTES = 900;

/** The tar entry types a media archive holds: regular files, and folders (which S3 does not keep). */
export type MediaEntryType = "file" | "directory";

/**
 * A media archive entry's name as an object key relative to the media root, or why it cannot be
 * one. A leading `./` (as `tar -C dir -cf - .` writes) is dropped, and a folder's trailing `/`;
 * what is left must be a relative path of plain names: no leading `/`, no empty, `.` or `..`
 * part, no NUL, no backslash (a path separator elsewhere), at most MEDIA_KEY_MAX_BYTES. So a
 * name taken here never leads out of the folder it is extracted into, and never names the same
 * object as another spelling of it. `key` is "" for the archive's own root folder (`./`).
 */
export function mediaEntryKey(name: string, type: MediaEntryType): { key: string } | { problem: string } {
  let n = name;
  while (n.startsWith("./")) n = n.slice(2);
  if (type === "directory") {
    if (n === "." || n === "") return { key: "" };
    if (n.endsWith("/")) n = n.slice(0, -1);
  }
  const shown = JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}…` : name);
  if (n === "") return { problem: `the entry ${shown} has no name` };
  if (n.startsWith("/")) return { problem: `the entry ${shown} is an absolute path` };
  if (n.includes("\0")) return { problem: `the entry ${shown} has a NUL in its name` };
  if (n.includes("\\")) return { problem: `the entry ${shown} has a backslash in its name` };
  for (const part of n.split("/")) {
    if (part === "..") return { problem: `the entry ${shown} leads out of the folder (..)` };
    if (part === "" || part === ".") return { problem: `the entry ${shown} has an empty or '.' part` };
  }
  if (Buffer.byteLength(n, "utf8") > MEDIA_KEY_MAX_BYTES) return { problem: `the entry ${shown} has a name longer than ${MEDIA_KEY_MAX_BYTES} bytes` };
  return { key: n };
}

/**
 * Why a tar entry of `type` (as tar-stream names header types) has no place in a media archive,
 * or undefined when it has one: only regular files and folders, no links, devices or fifos.
 */
export function mediaEntryTypeProblem(name: string, type: string | null | undefined): string | undefined {
  if (type === "file" || type === "directory") return undefined;
  const what = type === "symlink" ? "a symbolic link" : type === "link" ? "a hard link" : type === "character-device" || type === "block-device" ? "a device" : type === "fifo" ? "a fifo" : `of type ${type ?? "unknown"}`;
  return `the entry ${JSON.stringify(name)} is ${what}: a media archive holds regular files and folders only`;
}
