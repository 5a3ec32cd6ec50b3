// The agent's second entry point (`@slipway/agent/internal`): parts other packages of this
// repository use directly. The data benchmark (test/src/bench/data.bench.ts) times these.
export { copyDatabase } from "./data/database.js";
export { copyPrefix, listAll, makeS3Client, mapBounded } from "./data/s3.js";
export { uploadStream } from "./data/s3-upload.js";
