/**
 * A parser for protobuf text format, the syntax of Triton's `config.pbtxt`. It knows no schema: every
 * field maps to the list of values it was given (a repeated field written as `f: 1 f: 2` or `f: [1, 2]`
 * looks the same), messages are nested objects, and enum names and `true`/`false` stay identifiers
 * (strings) for the typed reader (registry/model-config.ts) to interpret.
 */

export type PbValue = string | number | PbMessage;
export interface PbMessage {
  [field: string]: PbValue[];
}

export class PbtxtSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${message} at line ${line}, column ${column}`);
    this.name = 'PbtxtSyntaxError';
  }
}

type Token =
  | { kind: 'ident'; text: string; line: number; column: number }
  | { kind: 'string'; text: string; line: number; column: number }
  | { kind: 'number'; value: number; text: string; line: number; column: number }
  | { kind: 'punct'; text: string; line: number; column: number }
  | { kind: 'eof'; text: ''; line: number; column: number };

const ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
  '?': '?',
};

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (message: string, at = i): never => {
    throw new PbtxtSyntaxError(message, line, at - lineStart + 1);
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    const column = i - lineStart + 1;
    if ('{}[]<>:,;'.includes(c)) {
      tokens.push({ kind: 'punct', text: c, line, column });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let out = '';
      i++;
      while (true) {
        if (i >= text.length || text[i] === '\n') fail('unterminated string', i);
        const ch = text[i]!;
        if (ch === c) {
          i++;
          break;
        }
        if (ch === '\\') {
          const next = text[i + 1] ?? '';
          if (next in ESCAPES) {
            out += ESCAPES[next];
            i += 2;
          } else if (/[0-7]/.test(next)) {
            const oct = /^[0-7]{1,3}/.exec(text.slice(i + 1))![0];
            out += String.fromCharCode(parseInt(oct, 8));
            i += 1 + oct.length;
          } else if (next === 'x') {
            const hex = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 2));
            if (!hex) fail('bad \\x escape in string');
            out += String.fromCharCode(parseInt(hex![0], 16));
            i += 2 + hex![0].length;
          } else {
            fail(`unknown escape \\${next} in string`);
          }
          continue;
        }
        out += ch;
        i++;
      }
      const last = tokens[tokens.length - 1];
      // Adjacent string literals concatenate, as in C and in protobuf.
      if (last?.kind === 'string') last.text += out;
      else tokens.push({ kind: 'string', text: out, line, column });
      continue;
    }
    const num = /^[-+]?(0[xX][0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?[fF]?|inf(inity)?|nan)(?![\w.])/i.exec(
      text.slice(i, i + 64),
    );
    if (num && (/[\d.+-]/.test(c) || /^[-+]?(inf|nan)/i.test(num[0]))) {
      const raw = num[0];
      const hex = /^[-+]?0[xX]/.test(raw);
      const body = hex ? raw : raw.replace(/[fF]$/, '');
      let value: number;
      if (hex) value = (body.startsWith('-') ? -1 : 1) * parseInt(body.replace(/^[-+]?0[xX]/, ''), 16);
      else if (/inf/i.test(body)) value = body.startsWith('-') ? -Infinity : Infinity;
      else if (/nan/i.test(body)) value = NaN;
      else value = Number(body);
      tokens.push({ kind: 'number', value, text: raw, line, column });
      i += raw.length;
      continue;
    }
    const ident = /^[A-Za-z_][\w.]*/.exec(text.slice(i, i + 256));
    if (ident) {
      tokens.push({ kind: 'ident', text: ident[0], line, column });
      i += ident[0].length;
      continue;
    }
    fail(`unexpected character ${JSON.stringify(c)}`);
  }
  tokens.push({ kind: 'eof', text: '', line, column: i - lineStart + 1 });
  return tokens;
}

/** Parses protobuf text format into a schema-free message. Throws PbtxtSyntaxError with line and column. */
export function parsePbtxt(text: string): PbMessage {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token => tokens[pos]!;
  const next = (): Token => tokens[pos++]!;
  const fail = (message: string, token: Token = peek()): never => {
    throw new PbtxtSyntaxError(message, token.line, token.column);
  };
  const isPunct = (t: Token, p: string): boolean => t.kind === 'punct' && t.text === p;

  const parseMessage = (close: string | undefined): PbMessage => {
    const message: PbMessage = {};
    while (true) {
      const t = peek();
      if (close === undefined ? t.kind === 'eof' : isPunct(t, close)) {
        next();
        return message;
      }
      if (t.kind === 'eof') fail(`expected '${close}' before the end of the text`);
      if (t.kind !== 'ident') fail(`expected a field name, found ${JSON.stringify(t.text)}`);
      next();
      const values = (message[t.text] ??= []);
      const hasColon = isPunct(peek(), ':');
      if (hasColon) next();
      const v = peek();
      if (isPunct(v, '{') || isPunct(v, '<')) {
        next();
        values.push(parseMessage(v.text === '{' ? '}' : '>'));
      } else if (isPunct(v, '[')) {
        // `input [ { … } ]` without a colon is how Triton's docs write message lists.
        next();
        if (isPunct(peek(), ']')) next();
        else {
          while (true) {
            values.push(parseValue());
            const sep = next();
            if (isPunct(sep, ']')) break;
            if (!isPunct(sep, ',')) fail(`expected ',' or ']' in the list of field '${t.text}'`, sep);
          }
        }
      } else {
        if (!hasColon) fail(`expected ':' or '{' after field '${t.text}'`, v);
        values.push(parseScalar());
      }
      if (isPunct(peek(), ',') || isPunct(peek(), ';')) next();
    }
  };

  const parseValue = (): PbValue => {
    const t = peek();
    if (isPunct(t, '{') || isPunct(t, '<')) {
      next();
      return parseMessage(t.text === '{' ? '}' : '>');
    }
    return parseScalar();
  };

  const parseScalar = (): PbValue => {
    const t = next();
    if (t.kind === 'string' || t.kind === 'ident') return t.text;
    if (t.kind === 'number') return t.value;
    return fail(`expected a value, found ${JSON.stringify(t.text) || 'the end of the text'}`, t);
  };

  return parseMessage(undefined);
}
