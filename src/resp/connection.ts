/**
 * One client connection: bytes to commands (the parser), commands to replies, replies back in the order the
 * commands came. Commands run one after another, except that reads next to each other in a pipeline may be
 * in flight together (their answers still go out in order); anything else waits for every command before it
 * and holds back every command after it, so a pipeline sees its own writes as Redis would show them.
 */
import type { Socket } from "node:net";
import type { RequestContext } from "../backend/request-context.js";
import type { Logger } from "../log.js";
import type { CommandContext, CommandSpec, RespContext, Session } from "./command.js";
import { errorParts, ProtocolError } from "./errors.js";
import { RespParser, type Frame, type ParserLimits } from "./parser.js";
import { error, type Reply } from "./reply.js";

/** Commands parsed but not yet answered, past which the connection stops reading. */
const MAX_PENDING = 1024;

interface Pending {
  args: Buffer[];
  spec: CommandSpec | undefined;
  read: boolean;
  oversize?: number;
  reply?: Reply;
  /** close the connection once this reply is written */
  close?: boolean;
}

export class RespConnection {
  readonly session: Session;
  /** when the parser began holding a command not yet complete; 0 when it holds none */
  partialSince = 0;
  readonly closed: Promise<void>;
  private readonly parser: RespParser;
  private readonly queue: Pending[] = [];
  /** queue[0 .. started) have been started */
  private started = 0;
  /** a command that is not a read is running: nothing after it starts */
  private barrier = false;
  /** false after QUIT, a protocol error, or once the listener drains */
  private accepting = true;
  private draining = false;
  private corked = false;
  private seq = 0;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: RespContext,
    id: number,
    limits: ParserLimits,
    private readonly log: Logger,
  ) {
    this.session = { id, addr: `${socket.remoteAddress}:${socket.remotePort}`, proto: 2 };
    this.parser = new RespParser(limits);
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("drain", () => this.maybeResume());
    socket.on("error", (err) => {
      this.log.debug({ err, conn: id }, "redis protocol connection failed");
      socket.destroy();
    });
  }

  /** Stops reading; answers the commands already read, then closes. */
  drain(): void {
    this.accepting = false;
    this.draining = true;
    this.socket.pause();
    if (this.queue.length === 0) this.socket.end();
  }

  /** Answers what came before, then this error, then closes: the client broke the protocol. */
  abort(reply: Reply): void {
    if (!this.accepting) return;
    this.accepting = false;
    this.queue.push({ args: [], spec: undefined, read: false, reply, close: true });
    this.advance();
  }

  destroy(): void {
    this.socket.destroy();
  }

  get paused(): boolean {
    return this.socket.isPaused();
  }

  private onData(chunk: Buffer): void {
    if (!this.accepting) return;
    try {
      this.parser.feed(chunk, this.onFrame);
    } catch (err) {
      if (!(err instanceof ProtocolError)) return this.broken(err);
      this.log.debug({ conn: this.session.id, problem: err.message }, "redis protocol error; closing");
      this.abort(error("ERR", `Protocol error: ${err.message}`));
      return;
    }
    this.partialSince = this.parser.partial ? this.partialSince || Date.now() : 0;
    this.advance();
    if (this.queue.length >= MAX_PENDING) this.socket.pause();
  }

  /** A fault of the daemon's own: this connection is lost, the daemon goes on. */
  private broken(err: unknown): void {
    this.log.error({ err, conn: this.session.id }, "redis protocol connection failed; closing it");
    this.accepting = false;
    this.socket.destroy();
  }

  private readonly onFrame = (frame: Frame): void => {
    if (!this.accepting) return;
    const name = frame.args[0]!.toString("latin1").toLowerCase();
    if (frame.inline && (name === "post" || name === "host:")) {
      // An HTTP request (a browser tricked into posting here): Redis closes such connections, unanswered.
      this.log.warn(
        { conn: this.session.id, addr: this.session.addr },
        "HTTP request on the redis protocol port; closing",
      );
      this.abort("");
      return;
    }
    const spec = this.ctx.commands.get(name);
    this.queue.push({
      args: frame.args,
      spec,
      read: spec?.read === true && frame.oversize === undefined,
      oversize: frame.oversize,
    });
  };

  private advance(): void {
    try {
      do this.pump();
      while (this.flush());
    } catch (err) {
      this.broken(err);
    }
  }

  /** Starts what may start: reads while no other command runs; another command once nothing is before it. */
  private pump(): void {
    // After QUIT nothing more runs: its answer closes the connection.
    while (this.started < this.queue.length && !this.barrier && !this.session.quit) {
      const p = this.queue[this.started]!;
      if (!p.read && this.started > 0) return;
      this.started++;
      if (p.reply !== undefined) continue; // answered already: a protocol error, a timeout
      let result: Reply | Promise<Reply>;
      try {
        result = this.execute(p);
      } catch (err) {
        result = this.failure(err);
      }
      if (typeof result === "string" || Buffer.isBuffer(result)) {
        this.settle(p, result);
        continue;
      }
      if (!p.read) this.barrier = true;
      void result.then((reply) => {
        if (!p.read) this.barrier = false;
        this.settle(p, reply);
        this.advance();
      });
    }
  }

  private settle(p: Pending, reply: Reply): void {
    p.reply = reply;
    if (this.session.quit) p.close = true;
  }

  /** Writes the answers at the head of the queue that are ready; whether it wrote any. */
  private flush(): boolean {
    let wrote = false;
    while (this.queue.length > 0 && this.queue[0]!.reply !== undefined) {
      const p = this.queue.shift()!;
      this.started--;
      wrote = true;
      this.write(p.reply!);
      if (p.close) {
        this.accepting = false;
        this.queue.length = 0;
        this.started = 0;
        this.socket.end();
        return false;
      }
    }
    if (this.draining && this.queue.length === 0) this.socket.end();
    else if (wrote) this.maybeResume();
    return wrote;
  }

  private execute(p: Pending): Reply | Promise<Reply> {
    const { spec, args } = p;
    if (p.oversize !== undefined) {
      const max = this.ctx.proxy.server.maxValue;
      return error(
        "VALUE_TOO_LARGE",
        `The command holds ${p.oversize} bytes in one argument or in all; the limit is ${max} per value.`,
      );
    }
    if (!spec) return unknownCommand(args);
    if (spec.arity > 0 ? args.length !== spec.arity : args.length < -spec.arity) {
      return error("ERR", `wrong number of arguments for '${spec.name}' command`);
    }
    if (!spec.noAuth && this.ctx.proxy.auth.enabled && this.session.token === undefined) {
      return error("NOAUTH", "Authentication required.");
    }
    const c: CommandContext = { resp: this.ctx, session: this.session };
    if (spec.backend) return this.request(spec, args, c);
    try {
      const r = spec.run(args, c);
      return typeof r === "string" || Buffer.isBuffer(r) ? r : r.catch((err: unknown) => this.failure(err));
    } catch (err) {
      return this.failure(err);
    }
  }

  /** A command that calls the backends, under the request deadline as an HTTP request is. */
  private request(spec: CommandSpec, args: Buffer[], c: CommandContext): Promise<Reply> {
    const deadlineMs = this.ctx.proxy.server.requestDeadlineMs;
    const request: RequestContext = {
      id: `resp-${this.session.id}-${++this.seq}`,
      deadline: Date.now() + deadlineMs,
    };
    return new Promise((resolve) => {
      const answer = (reply: Reply) => {
        if (request.answered) return;
        request.answered = true;
        clearTimeout(timer);
        resolve(reply);
      };
      const timer = setTimeout(() => {
        const may = spec.read ? "" : "; the write may still complete";
        answer(error("TIMEOUT", `The command took longer than its deadline of ${deadlineMs} ms${may}.`));
      }, deadlineMs);
      const run = async () => spec.run(args, { ...c, request });
      run().then(answer, (err: unknown) => answer(this.failure(err)));
    });
  }

  private failure(err: unknown): Reply {
    const parts = errorParts(err);
    if (parts) return error(parts.code, parts.message);
    this.log.error({ err, conn: this.session.id }, "redis protocol command failed");
    return error("INTERNAL", "An unexpected error happened; it has been logged.");
  }

  private write(reply: Reply): void {
    if (!this.socket.writable) return;
    if (!this.corked) {
      // Answers that are ready in the same tick leave in one write.
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    if (!this.socket.write(reply)) this.socket.pause();
  }

  private maybeResume(): void {
    if (!this.accepting || !this.socket.isPaused()) return;
    if (this.queue.length >= MAX_PENDING / 2 || this.socket.writableNeedDrain) return;
    if (this.partialSince) this.partialSince = Date.now();
    this.socket.resume();
  }
}

function unknownCommand(args: Buffer[]): Reply {
  const show = (b: Buffer) => `'${b.toString("utf8").slice(0, 128)}'`;
  const rest = args.slice(1, 20).map(show).join(" ");
  return error("ERR", `unknown command ${show(args[0]!)}, with args beginning with: ${rest}`);
}
