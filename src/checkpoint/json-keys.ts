// JSON.parse keeps the last of two equal keys without a word, and a safetensors header with a
// duplicate tensor name is ambiguous (which data_offsets are right?). This walks the top-level
// object of text that JSON.parse has already accepted and reports the first repeated key.

function skipWs(s: string, i: number): number {
  while (i < s.length && (s[i] === ' ' || s[i] === '\n' || s[i] === '\r' || s[i] === '\t')) i++;
  return i;
}

/** Index just past the closing quote of the string starting at `i` (s[i] === '"'). */
function skipString(s: string, i: number): number {
  i++;
  while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** Index just past the value starting at `i` (any JSON value, nested or not). */
function skipValue(s: string, i: number): number {
  let depth = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '"') {
      i = skipString(s, i);
      if (depth === 0) return i;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) return i;
      depth--;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && c === ',') return i;
    i++;
  }
  return i;
}

/** The first key that appears twice at the top level of a valid JSON object text, else null. */
export function duplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>();
  let i = skipWs(text, 0);
  if (text[i] !== '{') return null;
  i = skipWs(text, i + 1);
  while (i < text.length && text[i] === '"') {
    const end = skipString(text, i);
    const key = JSON.parse(text.slice(i, end)) as string;
    if (seen.has(key)) return key;
    seen.add(key);
    i = skipWs(text, end);
    i = skipWs(text, i + 1); // past ':'
    i = skipWs(text, skipValue(text, i));
    if (text[i] !== ',') break;
    i = skipWs(text, i + 1);
  }
  return null;
}
