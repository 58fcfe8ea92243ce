/** `${VAR}` and `${VAR:-default}` in configuration values, replaced from the environment. */

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces every reference in `text`. Like the shell, `${VAR:-default}` takes the default when VAR is
 * unset or empty. `fail` is called (and must throw) for an unset VAR without default or a malformed `${`.
 */
export function substituteEnv(
  text: string,
  env: NodeJS.ProcessEnv,
  fail: (problem: string) => never,
): string {
  const out = text.replace(REFERENCE, (_all, name: string, fallback: string | undefined) => {
    const value = env[name];
    if (fallback !== undefined) return value === undefined || value === "" ? fallback : value;
    if (value === undefined) {
      return fail(
        `uses the environment variable ${name}, which is not set; set it, or write \${${name}:-default} to give a default`,
      );
    }
    return value;
  });
  // A reference that did not match the pattern is a typo, not a literal to keep.
  const rest = text.replace(REFERENCE, "");
  if (rest.includes("${")) {
    fail("has a malformed ${...}; write ${NAME} or ${NAME:-default}, NAME being letters, digits and _");
  }
  return out;
}
