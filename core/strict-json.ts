/**
 * A strict JSON parser (RFC 8259) for everything Keel reads from outside, signed metadata above all.
 *
 * JSON.parse is not enough for signed bytes: it silently keeps the last of two members with the same
 * name (so the document a verifier checks is not the one a reader of the text sees, and its canonical
 * form differs from any signer's), and a member named `__proto__` becomes a prototype when the value is
 * later copied by assignment (zod's record parser does that) instead of being an unknown field that is
 * refused. Here no member name is special: every member is an own, enumerable data property, `__proto__`
 * included, and a repeated member name is an error naming its path. Nesting deeper than MAX_JSON_DEPTH
 * is refused rather than risking the stack. Values are otherwise exactly what JSON.parse returns.
 */

/** Far deeper than any Keel document (agent.json, the deepest, nests 4 levels). */
export const MAX_JSON_DEPTH = 64;

/** Where and why the text is not strict JSON; `path` is the member path ("" at the root). */
export class JsonSyntaxError extends Error {
  override name = "JsonSyntaxError";
  constructor(
    readonly path: string,
    readonly offset: number,
    message: string,
  ) {
    super(`${message} at offset ${offset}`);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export function parseStrictJson(text: string): unknown {
  const p = new Parser(text);
  p.skipWhitespace();
  const value = p.value("", 0);
  p.skipWhitespace();
  if (p.pos !== text.length) throw p.error("", "unexpected text after the JSON value");
  return value;
}

/** Sets a member as an own data property, so that `__proto__` is a member like any other. */
function setMember(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else obj[key] = value;
}

const memberPath = (path: string, key: string) => (path ? `${path}.${key}` : key);

class Parser {
  pos = 0;
  constructor(private readonly text: string) {}

  error(path: string, message: string): JsonSyntaxError {
    return new JsonSyntaxError(path, this.pos, message);
  }

  skipWhitespace(): void {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  private expect(char: string, path: string): void {
    if (this.text[this.pos] !== char) {
      const found = this.pos < this.text.length ? JSON.stringify(this.text[this.pos]) : "end of text";
      throw this.error(path, `expected ${JSON.stringify(char)} but found ${found}`);
    }
    this.pos++;
  }

  value(path: string, depth: number): unknown {
    const c = this.text[this.pos];
    switch (c) {
      case "{":
        return this.object(path, depth + 1);
      case "[":
        return this.array(path, depth + 1);
      case '"':
        return this.string(path);
      case "t":
        return this.literal("true", true, path);
      case "f":
        return this.literal("false", false, path);
      case "n":
        return this.literal("null", null, path);
      default:
        return this.number(path);
    }
  }

  private literal<T>(word: string, value: T, path: string): T {
    if (!this.text.startsWith(word, this.pos)) throw this.error(path, "not a JSON value");
    this.pos += word.length;
    return value;
  }

  private number(path: string): number {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) {
      throw this.error(path, this.pos < this.text.length ? "not a JSON value" : "unexpected end of text");
    }
    this.pos += m[0].length;
    return Number(m[0]);
  }

  /** Scans to the closing quote checking escapes and control characters; JSON.parse decodes the escapes. */
  private string(path: string): string {
    const t = this.text;
    const start = this.pos;
    let escaped = false;
    let i = start + 1;
    for (;;) {
      if (i >= t.length) {
        this.pos = i;
        throw this.error(path, "unterminated string");
      }
      const c = t.charCodeAt(i);
      if (c === QUOTE) break;
      if (c < 0x20) {
        this.pos = i;
        throw this.error(path, "control character in a string");
      }
      if (c === BACKSLASH) {
        escaped = true;
        const e = t[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) {
            this.pos = i;
            throw this.error(path, "bad \\u escape in a string");
          }
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) {
          this.pos = i;
          throw this.error(path, "bad escape in a string");
        }
        i += 2;
        continue;
      }
      i++;
    }
    this.pos = i + 1;
    return escaped ? (JSON.parse(t.slice(start, i + 1)) as string) : t.slice(start + 1, i);
  }

  private checkDepth(path: string, depth: number): void {
    if (depth > MAX_JSON_DEPTH) throw this.error(path, `nested deeper than ${MAX_JSON_DEPTH} levels`);
  }

  private array(path: string, depth: number): unknown[] {
    this.checkDepth(path, depth);
    this.pos++;
    const out: unknown[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      out.push(this.value(`${path}[${out.length}]`, depth));
      this.skipWhitespace();
      if (this.text[this.pos] === ",") {
        this.pos++;
        continue;
      }
      this.expect("]", path);
      return out;
    }
  }

  private object(path: string, depth: number): Record<string, unknown> {
    this.checkDepth(path, depth);
    this.pos++;
    const out: Record<string, unknown> = {};
    this.skipWhitespace();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') throw this.error(path, "expected a member name in quotes");
      const keyAt = this.pos;
      const key = this.string(path);
      const at = memberPath(path, key);
      if (Object.hasOwn(out, key)) {
        this.pos = keyAt;
        throw this.error(at, `member ${JSON.stringify(key)} appears twice`);
      }
      this.skipWhitespace();
      this.expect(":", at);
      this.skipWhitespace();
      setMember(out, key, this.value(at, depth));
      this.skipWhitespace();
      if (this.text[this.pos] === ",") {
        this.pos++;
        continue;
      }
      this.expect("}", path);
      return out;
    }
  }
}
