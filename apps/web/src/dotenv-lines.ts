/** A variable's name as the API takes it: letters, digits and _, not starting with a digit. */
export const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ParsedLines {
  /** Key → value, in the order given (a later line for the same key wins, as in a shell). */
  variables: Record<string, string>;
  /** Lines that are not `KEY=value`, each with its 1-based number: when any, nothing is to be sent. */
  errors: Array<{ line: number; message: string }>;
}

/**
 * Parses pasted `KEY=value` lines the way a .env file is read: blank lines and `#` comments are
 * skipped, an `export ` prefix is dropped, a value in single quotes is taken as it is, one in
 * double quotes understands \n, \t, \" and \\; an unquoted value is trimmed and ends at ` #`.
 * Every line that is not a variable is named with its number, so a paste is all or nothing.
 */
export function parseDotenvLines(text: string): ParsedLines {
  const variables: Record<string, string> = {};
  const errors: ParsedLines["errors"] = [];
  text.split(/\r\n|\r|\n/).forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const body = trimmed.replace(/^export\s+/, "");
    const eq = body.indexOf("=");
    if (eq === -1) {
      errors.push({ line, message: `line ${line}: no '=' (write KEY=value)` });
      return;
    }
    const key = body.slice(0, eq).trim();
    if (!VARIABLE_NAME.test(key)) {
      errors.push({ line, message: `line ${line}: '${key}' is not a variable name (letters, digits and _, not starting with a digit)` });
      return;
    }
    const value = parseValue(body.slice(eq + 1).trim());
    if (value === undefined) {
      errors.push({ line, message: `line ${line}: the quote of ${key}'s value is not closed` });
      return;
    }
    delete variables[key];
    variables[key] = value;
  });
  return { variables, errors };
}

function parseValue(v: string): string | undefined {
  const q = v[0];
  if (q === "'" || q === '"') {
    const end = closingQuote(v, q);
    if (end === -1) return undefined;
    const rest = v.slice(end + 1).trim();
    if (rest !== "" && !rest.startsWith("#")) return undefined;
    const inner = v.slice(1, end);
    return q === "'" ? inner : inner.replace(/\\([nt"\\])/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c));
  }
  const hash = v.search(/\s#/);
  return (hash === -1 ? v : v.slice(0, hash)).trim();
}

function closingQuote(v: string, q: string): number {
  for (let i = 1; i < v.length; i++) {
    if (q === '"' && v[i] === "\\") i++;
    else if (v[i] === q) return i;
  }
  return -1;
}

/**
 * Host labels as typed, one `key=value` a line (blank lines skipped, spaces around each side
 * trimmed) → labels, or the first line that has no `=`, named by its number. The API judges keys
 * and values (its message then goes next to the field).
 */
export function parseLabelLines(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r\n|\r|\n/).entries()) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    if (eq === -1) return `line ${i + 1}: write key=value`;
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}
