/**
 * The ceiling: a bare node:http server that answers every request with the same status, headers and bytes
 * sidecache sent for the warmed key, doing nothing else. Argument: JSON {status, headers, body}.
 */
import { createServer } from "node:http";

const answer = JSON.parse(process.argv[2] ?? "{}") as {
  status: number;
  headers: Record<string, string>;
  body: string;
};
const length = Buffer.byteLength(answer.body);

const server = createServer((req, res) => {
  req.resume();
  for (const name in answer.headers) res.setHeader(name, answer.headers[name]!);
  res.writeHead(answer.status, { "content-type": "application/json", "content-length": length });
  res.end(answer.body);
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${(server.address() as { port: number }).port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
