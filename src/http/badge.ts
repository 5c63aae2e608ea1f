/**
 * The SVG of `GET /badge/:page.svg`: a flat, shields-like badge, label on the left, value on the
 * right. No font is measured (the node has none): each part is as wide as its characters'
 * approximate advances in 11 px Verdana, the font badges use, plus padding. Every text placed
 * in the SVG goes through `escapeXml`: page names and labels come from the URL.
 */

/** Height of the badge, px. */
export const BADGE_HEIGHT_PX = 20;
/** Space on either side of each part's text, px. */
const PADDING_PX = 6;
const FONT_SIZE_PX = 11;
const LABEL_COLOR = '#555';
export const VALUE_COLOR = '#007ec6';
export const ERROR_COLOR = '#e05d44';

// Approximate advance widths of 11 px Verdana, px (within a pixel for ASCII).
const NARROW = new Set([...'ijl.,:;\'!|']);
const SEMI_NARROW = new Set([...'frtI()[]{}/\\-" ']);
const WIDE = new Set([...'mwMW@%']);
const UPPER = /^[A-Z]$/;

/** Approximate width of `text` in 11 px Verdana, px. */
export function textWidth(text: string): number {
  let width = 0;
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (NARROW.has(char)) width += 3.5;
    else if (SEMI_NARROW.has(char)) width += 4.6;
    else if (WIDE.has(char)) width += 10.5;
    else if (UPPER.test(char)) width += 7.6;
    // East Asian wide characters and emoji take about a full em.
    else if (code >= 0x1100) width += 11;
    else width += 7;
  }
  return width;
}

const XML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Text or an attribute value, safe inside SVG markup. */
export function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => XML_ESCAPES[c] as string);
}

export interface BadgeModel {
  readonly label: string;
  readonly value: string;
  /** The accessible name and tooltip (`views of /blog: 1,234`). */
  readonly title: string;
  /** The value's background; VALUE_COLOR unless given. */
  readonly color?: string;
}

export interface BadgeLayout {
  readonly labelWidth: number;
  readonly valueWidth: number;
  readonly width: number;
}

export function badgeLayout(model: Pick<BadgeModel, 'label' | 'value'>): BadgeLayout {
  const labelWidth = Math.ceil(textWidth(model.label)) + 2 * PADDING_PX;
  const valueWidth = Math.ceil(textWidth(model.value)) + 2 * PADDING_PX;
  return { labelWidth, valueWidth, width: labelWidth + valueWidth };
}

export function renderBadge(model: BadgeModel): string {
  const { labelWidth, valueWidth, width } = badgeLayout(model);
  const label = escapeXml(model.label);
  const value = escapeXml(model.value);
  const title = escapeXml(model.title);
  const labelX = labelWidth / 2;
  const valueX = labelWidth + valueWidth / 2;
  const h = BADGE_HEIGHT_PX;
  // A text is drawn twice: a faint shadow one pixel below, then the text.
  const text = (x: number, content: string) =>
    `<text x="${x}" y="15" fill="#010101" fill-opacity=".3" aria-hidden="true">${content}</text><text x="${x}" y="14">${content}</text>`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}" role="img" aria-label="${title}">` +
    `<title>${title}</title>` +
    `<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>` +
    `<clipPath id="r"><rect width="${width}" height="${h}" rx="3" fill="#fff"/></clipPath>` +
    `<g clip-path="url(#r)"><rect width="${labelWidth}" height="${h}" fill="${LABEL_COLOR}"/>` +
    `<rect x="${labelWidth}" width="${valueWidth}" height="${h}" fill="${escapeXml(model.color ?? VALUE_COLOR)}"/>` +
    `<rect width="${width}" height="${h}" fill="url(#s)"/></g>` +
    `<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="${FONT_SIZE_PX}">` +
    text(labelX, label) +
    text(valueX, value) +
    `</g></svg>\n`
  );
}
