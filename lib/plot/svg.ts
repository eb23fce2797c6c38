/** Small SVG string helpers shared by the figure frame and legends. */

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/**
 * Rough width of a label in DejaVu Sans (the PNG font, wider than most system fonts), used to size
 * margins and wrap lines: text is never measured, since there is no layout engine in Node.
 */
export function textWidth(s: string, fontSize: number): number {
  return [...s].length * fontSize * 0.62;
}

/** Greedy word wrap to a pixel width. */
export function wrap(s: string, width: number, fontSize: number): string[] {
  const lines: string[] = [];
  for (const para of s.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      const next = line ? `${line} ${word}` : word;
      if (line && textWidth(next, fontSize) > width) {
        lines.push(line);
        line = word;
      } else {
        line = next;
      }
    }
    lines.push(line);
  }
  return lines;
}

export function fmtPercent(p: number, digits = 2): string {
  return `${(p * 100).toFixed(digits)}%`;
}
