#!/usr/bin/env node
// The embedded S3 server (s3rver), run as a child process of the control plane with
// --openssl-legacy-provider (s3rver's ListObjectsV2 pagination needs it on Node 20).
// Arguments: <directory> <address> <port> <bucket,bucket,...>. Prints "listening <port>" when ready.
import S3rver from "s3rver";

const [directory, address, port, buckets] = process.argv.slice(2);
if (!directory || !address || port === undefined) {
  process.stderr.write("usage: s3-server <directory> <address> <port> [buckets]\n");
  process.exit(2);
}
const server = new S3rver({
  directory,
  address,
  port: Number(port),
  silent: true,
  // Path-style only: containers reach the server as host.docker.internal, which s3rver would
  // otherwise take for a virtual-hosted bucket name.
  vhostBuckets: false,
  configureBuckets: (buckets ?? "").split(",").filter(Boolean).map((name) => ({ name, configs: [] })),
});
const info = (await server.run()) as { port: number };
process.stdout.write(`listening ${info.port}\n`);
const stop = () => server.close().then(() => process.exit(0), () => process.exit(1));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// The control plane holds our stdin open: EOF means it died without stopping us, and a
// server left behind would keep the port its next start needs.
process.stdin.on("end", stop);
process.stdin.resume();
