// A tiny byte-pair-encoding trainer for the demo model's own tokenizer (a few hundred tokens; the
// LLaMA-2 vocabulary of 32k would not fit the demo's ≤ 5 M parameter budget). It writes a
// tokenizer.json in LLaMA-2's own layout (normalizer Prepend("▁") + Replace(" ", "▁"), BPE model,
// decoder Replace/Fuse/Strip), so the same loader path serves the demo and real LLaMA checkpoints.
// Digits are never merged: numbers tokenize digit by digit, which small models learn arithmetic on.
// Hand-written because the npm tokenizers packages only encode; none trains.

const SPACE = '\u2581';
const SPECIALS = ['<unk>', '<s>', '</s>'] as const;

const hasDigit = (s: string) => /\d/.test(s);

/** Trains merges on the corpus' words until the vocabulary has `vocabSize` tokens; returns it (id order) and the merges. */
export function trainBpe(texts: readonly string[], vocabSize: number): { vocab: string[]; merges: [string, string][] } {
  const wordCounts = new Map<string, number>();
  for (const t of texts) {
    const normalized = SPACE + t.replaceAll(' ', SPACE);
    for (const w of normalized.split(new RegExp(`(?=${SPACE})`, 'u'))) if (w) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  }
  const words = [...wordCounts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([w, n]) => ({ syms: Array.from(w), n }));
  // Printable ASCII and newline always, so any English question encodes without <unk>.
  const chars = new Set<string>(['\n', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).filter((c) => c !== ' '), SPACE]);
  for (const w of words) for (const c of w.syms) chars.add(c);
  const vocab: string[] = [...SPECIALS, ...[...chars].sort()];
  const merges: [string, string][] = [];
  while (vocab.length < vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const a = w.syms[i] as string;
        const b = w.syms[i + 1] as string;
        if (hasDigit(a) || hasDigit(b)) continue;
        const key = `${a}\u0000${b}`;
        pairs.set(key, (pairs.get(key) ?? 0) + w.n);
      }
    }
    let best: string | null = null;
    let bestN = 1;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== null && k < best)) [best, bestN] = [k, n];
    if (best === null) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    vocab.push(a + b);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.syms[i] as string);
      }
      w.syms = out;
    }
  }
  return { vocab, merges };
}

/** tokenizer.json (Hugging Face tokenizers format) and tokenizer_config.json for the vocabulary. */
export function tokenizerFiles(vocab: readonly string[], merges: readonly [string, string][]): { tokenizer: object; config: object } {
  const ids = Object.fromEntries(vocab.map((t, i) => [t, i]));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE }, { type: 'Replace', pattern: { String: ' ' }, content: SPACE }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: SPACE }, content: ' ' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, ignore_merges: false, vocab: ids, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
  const config = { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: null, add_bos_token: true, add_eos_token: false, model_max_length: 512, tokenizer_class: 'LlamaTokenizer' };
  return { tokenizer, config };
}
