import { nodeServerApp } from "./git-repo.js";

/** A keep-alive Node app: a 3-byte answer, idle connections kept longer than HAProxy keeps its idle server connections. */
export const keepAliveAppFiles: Record<string, string> = nodeServerApp(
  [
    'const http = require("http");',
    'const body = Buffer.from("ok\\n");',
    "const server = http.createServer((req, res) => {",
    '  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });',
    "  res.end(body);",
    "});",
    "server.keepAliveTimeout = 75000;",
    "server.headersTimeout = 76000;",
    "server.listen(3000);",
    'process.on("SIGTERM", () => server.close(() => process.exit(0)));',
    "",
  ].join("\n"),
);
