import net from "node:net";

/** Sends one command to an HAProxy stats/admin socket and resolves with its whole answer (HAProxy closes the connection after it). */
export function haproxyCommand(socket: string, command: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socket);
    let out = "";
    const timer = setTimeout(() => conn.destroy(new Error(`no answer to '${command}' on ${socket} within ${timeoutMs} ms`)), timeoutMs);
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(`${command}\n`));
    conn.on("data", (d: string) => (out += d));
    conn.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    conn.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}
