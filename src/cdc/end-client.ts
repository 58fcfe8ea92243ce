/** Closing a pg connection without waiting on a server that no longer answers. */
import type pg from "pg";

const END_WAIT_MS = 2_000;

/** client.end(), or the socket destroyed when the server does not close its side within a moment. */
export async function endClient(client: pg.Client, waitMs = END_WAIT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), waitMs);
  });
  const ended = client.end().then(
    () => "ended" as const,
    () => "ended" as const,
  );
  if ((await Promise.race([ended, gaveUp])) === "late") client.connection.stream.destroy();
  clearTimeout(timer);
}
