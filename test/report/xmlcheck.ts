/**
 * A small XML well-formedness checker for tests (no XML parser is a dependency): tags balanced and
 * properly nested, attributes quoted and not repeated, entities known, one root element.
 * Returns the elements seen (name + attributes) so tests can look for specific ones.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  /** Text directly inside the element (entities decoded). */
  text: string;
}

const ENTITY = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;

function decode(s: string, where: number): string {
  const stripped = s.replace(ENTITY, '');
  if (stripped.includes('&')) throw new Error(`bad entity near offset ${where}`);
  if (stripped.includes('<')) throw new Error(`raw '<' in text near offset ${where}`);
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

export function parseXml(src: string): XmlElement[] {
  let i = 0;
  const stack: XmlElement[] = [];
  const all: XmlElement[] = [];
  let roots = 0;
  if (src.startsWith('<?xml')) {
    const end = src.indexOf('?>');
    if (end < 0) throw new Error('unterminated XML declaration');
    i = end + 2;
  }
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const text = lt < 0 ? src.slice(i) : src.slice(i, lt);
    if (text.trim()) {
      if (stack.length === 0) throw new Error(`text outside the root element at ${i}`);
      stack[stack.length - 1]!.text += decode(text, i);
    } else decode(text, i);
    if (lt < 0) break;
    if (src.startsWith('<!--', lt)) {
      const end = src.indexOf('-->', lt);
      if (end < 0) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    const gt = src.indexOf('>', lt);
    if (gt < 0) throw new Error(`unterminated tag at ${lt}`);
    const body = src.slice(lt + 1, gt);
    i = gt + 1;
    if (body.startsWith('/')) {
      const name = body.slice(1).trim();
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`closing </${name}> does not match <${open?.name ?? 'nothing'}> at ${lt}`);
      continue;
    }
    const selfClosing = body.endsWith('/');
    const inner = selfClosing ? body.slice(0, -1) : body;
    const m = /^([A-Za-z_][\w:.-]*)/.exec(inner);
    if (!m) throw new Error(`bad tag name at ${lt}`);
    const el: XmlElement = { name: m[1]!, attrs: {}, text: '' };
    let rest = inner.slice(m[1]!.length);
    const attrRe = /^\s+([A-Za-z_][\w:.-]*)\s*=\s*("([^"]*)"|'([^']*)')/;
    for (;;) {
      const a = attrRe.exec(rest);
      if (!a) break;
      if (a[1]! in el.attrs) throw new Error(`attribute ${a[1]} repeated in <${el.name}>`);
      el.attrs[a[1]!] = decode(a[3] ?? a[4] ?? '', lt);
      rest = rest.slice(a[0].length);
    }
    if (rest.trim()) throw new Error(`malformed attributes in <${el.name}>: '${rest.trim().slice(0, 30)}'`);
    if (stack.length === 0) roots++;
    if (roots > 1) throw new Error('more than one root element');
    all.push(el);
    if (!selfClosing) stack.push(el);
  }
  if (stack.length) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (roots !== 1) throw new Error('no root element');
  return all;
}
