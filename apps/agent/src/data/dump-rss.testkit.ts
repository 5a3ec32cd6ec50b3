/**
 * Runs one dumpToS3 in a process of its own, so its memory can be measured
 * without the test runner's: samples process.memoryUsage().rss every 50 ms and
 * prints one JSON line {bytes, sha256, ms, rssBefore, peakRssSampled, maxRssKernel}
 * (rssBefore: after the modules are loaded, before the dump starts).
 * maxRssKernel (getrusage) is the kernel's own high-water mark, so a spike
 * between two samples is not missed.
 * Arguments: <database url> <s3 endpoint> <bucket> <key>
 */
import { dumpToS3 } from "./database.js";

const [url, endpoint, bucket, key] = process.argv.slice(2);
const rssBefore = process.memoryUsage().rss;
let peak = rssBefore;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 50);
const started = performance.now();
const r = await dumpToS3(url, { endpoint, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", bucket, prefix: "", forcePathStyle: true }, key);
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage().rss);
process.stdout.write(
  JSON.stringify({
    bytes: r.bytes,
    sha256: r.sha256,
    ms: Math.round(performance.now() - started),
    rssBefore,
    peakRssSampled: peak,
    maxRssKernel: process.resourceUsage().maxRSS * 1024,
  }) + "\n",
);
