/**
 * A small well-formedness checker for the SVG we write: every tag closes in order, attributes
 * are quoted, entities are the five XML ones, exactly one root element. Returns the elements
 * seen (name + attributes) so tests can count and inspect them.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
}

export function parseXml(xml: string): XmlElement[] {
  const elements: XmlElement[] = [];
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    const badAmp = /&(?!(amp|lt|gt|quot|apos);)/.exec(text);
    if (badAmp) throw new Error(`bad entity in text at ${i + badAmp.index}`);
    if (text.trim() !== '' && stack.length === 0) throw new Error(`text outside the root at ${i}`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    if (!m) throw new Error(`malformed tag at ${lt}: ${xml.slice(lt, lt + 60)}`);
    const [, close, name, attrText, selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at ${lt}`);
    } else {
      const attrs: Record<string, string> = {};
      for (const a of attrText.matchAll(/([\w:.-]+)="([^"]*)"/g)) {
        if (a[1] in attrs) throw new Error(`duplicate attribute ${a[1]} on <${name}>`);
        if (/&(?!(amp|lt|gt|quot|apos);)/.test(a[2])) throw new Error(`bad entity in ${a[1]} on <${name}>`);
        attrs[a[1]] = a[2];
      }
      if (stack.length === 0) roots++;
      elements.push({ name, attrs });
      if (!selfClose) stack.push(name);
    }
    i = tag.lastIndex;
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('> <')}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return elements;
}
