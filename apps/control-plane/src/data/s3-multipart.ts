import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";

export interface StreamUploadOptions {
  /** bytes of every part but the last (S3: at least 5 MiB; at most 10,000 parts an object) */
  partSize: number;
  /** parts uploading at once; memory is (queueSize + 1) × partSize */
  queueSize: number;
  contentType?: string;
}

/**
 * A stream of unknown length into one S3 object through a fixed set of part buffers (the
 * agent's dump upload, apps/agent/src/data/s3-upload.ts, works the same way and says why
 * not @aws-sdk/lib-storage): each chunk is copied once into a reused part buffer, so memory
 * stays at (queueSize + 1) × partSize whatever the size of the stream.
 *
 * Nothing is completed unless the source ends cleanly: if it throws (the client went away,
 * the body is over the limit) or a part fails, the parts in flight are awaited and the
 * multipart upload is aborted, so no object, half or whole, appears. A source shorter than
 * one part becomes a single PutObject. Not safe to call twice for one key at once.
 */
export async function uploadStream(client: S3Client, bucket: string, key: string, source: AsyncIterable<Buffer>, opts: StreamUploadOptions): Promise<{ bytes: number; parts: number }> {
  const { partSize, queueSize } = opts;
  const free: Buffer[] = [];
  const take = () => free.pop() ?? Buffer.allocUnsafe(partSize);
  let current = take();
  let fill = 0;
  let bytes = 0;
  let partNumber = 0;
  let created: Promise<string> | undefined;
  const done: { PartNumber: number; ETag: string }[] = [];
  const inflight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;

  const uploadId = () =>
    (created ??= client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: opts.contentType })).then((r) => {
      if (!r.UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
      return r.UploadId;
    }));

  const sendPart = (buf: Buffer, length: number) => {
    const n = ++partNumber;
    const p: Promise<void> = (async () => {
      const id = await uploadId();
      const r = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: id, PartNumber: n, Body: buf.subarray(0, length), ContentLength: length }));
      if (!r.ETag) throw new Error(`UploadPart ${n} returned no ETag`);
      done.push({ PartNumber: n, ETag: r.ETag });
      free.push(buf);
    })()
      .catch((err: unknown) => {
        failure ??= { err };
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  const check = () => {
    if (failure) throw failure.err;
  };

  try {
    for await (const chunk of source) {
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(chunk.length - off, partSize - fill);
        chunk.copy(current, fill, off, off + n);
        fill += n;
        off += n;
        bytes += n;
        if (fill === partSize) {
          check();
          sendPart(current, fill);
          while (inflight.size >= queueSize) await Promise.race(inflight);
          check();
          current = take();
          fill = 0;
        }
      }
    }
    if (partNumber === 0) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: current.subarray(0, fill), ContentLength: fill, ContentType: opts.contentType }));
      return { bytes, parts: 1 };
    }
    if (fill > 0) sendPart(current, fill);
    await Promise.all(inflight);
    check();
    done.sort((a, b) => a.PartNumber - b.PartNumber);
    await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: await uploadId(), MultipartUpload: { Parts: done } }));
    return { bytes, parts: partNumber };
  } catch (err) {
    await Promise.allSettled(inflight);
    if (created) {
      const id = await created.catch(() => undefined);
      if (id) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id })).catch(() => undefined);
    }
    throw err;
  }
}
