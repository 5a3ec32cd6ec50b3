// s3rver ships no types; this is the part the embedded server uses.
declare module "s3rver" {
  interface S3rverOptions {
    directory: string;
    address?: string;
    port?: number;
    silent?: boolean;
    vhostBuckets?: boolean;
    configureBuckets?: Array<{ name: string; configs: unknown[] }>;
  }
  export default class S3rver {
    constructor(options: S3rverOptions);
    run(): Promise<{ port: number; address: string }>;
    close(): Promise<void>;
  }
}
