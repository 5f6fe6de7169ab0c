// The mood timeline: a small SVG chart of a conversation's emotions over time. One row per
// emotion (labelled in text), one column per message (oldest left), a dot sized by confidence,
// and a line through the dots so the drift of the conversation is visible at a glance.

import { EMOTIONS, isEmotion, percent } from './emotions.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const WIDTH = 320; // matches the viewBox in index.html
const LABEL_WIDTH = 64;
const TOP = 12;
const ROW_GAP = 22;
const RIGHT_PAD = 10;
const MAX_POINTS = 24;

/**
 * Draws `points` ({dominant, confidence, who}) into `svg` and a text summary into `summary`.
 * Only the latest MAX_POINTS are drawn; the summary covers all of them.
 */
export function renderMoodTimeline(svg, summary, points) {
  svg.replaceChildren();
  for (const [row, label] of EMOTIONS.entries()) {
    const y = rowY(row);
    svg.append(
      svgElement('line', { class: 'mood-grid', x1: LABEL_WIDTH, y1: y, x2: WIDTH - RIGHT_PAD, y2: y }),
      svgText(label, { class: 'mood-label', x: LABEL_WIDTH - 6, y: y + 4, 'text-anchor': 'end' }),
    );
  }

  const shown = points.slice(-MAX_POINTS);
  const span = WIDTH - RIGHT_PAD - LABEL_WIDTH - 12;
  const step = shown.length > 1 ? span / (shown.length - 1) : 0;
  const coords = shown.map((point, index) => {
    const label = isEmotion(point.dominant) ? point.dominant : 'neutral';
    return {
      label,
      point,
      x: LABEL_WIDTH + 6 + (shown.length > 1 ? index * step : span / 2),
      y: rowY(EMOTIONS.indexOf(label)),
    };
  });

  if (coords.length > 1) {
    svg.append(
      svgElement('polyline', {
        class: 'mood-line',
        points: coords.map((c) => `${c.x.toFixed(1)},${c.y.toFixed(1)}`).join(' '),
      }),
    );
  }
  for (const { label, point, x, y } of coords) {
    const confidence = percent(point.confidence);
    const dot = svgElement('circle', {
      class: `mood-dot emotion-${label}`,
      cx: x.toFixed(1),
      cy: y.toFixed(1),
      r: (3 + 4 * (confidence / 100)).toFixed(1),
    });
    const title = document.createElementNS(SVG_NS, 'title');
    title.textContent = `${point.who}: ${label} (${confidence}%)`;
    dot.append(title);
    svg.append(dot);
  }

  summary.textContent = summarize(points);
}

function summarize(points) {
  if (points.length === 0) return 'No messages yet.';
  const counts = new Map();
  for (const point of points) counts.set(point.dominant, (counts.get(point.dominant) ?? 0) + 1);
  // Ties go to the emotion seen first, so the summary does not flicker between equals.
  const [mostCommon] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
  const latest = points[points.length - 1].dominant;
  const noun = points.length === 1 ? 'message' : 'messages';
  return `${points.length} ${noun}; mostly ${mostCommon}; latest ${latest}.`;
}

function rowY(row) {
  return TOP + row * ROW_GAP;
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function svgText(text, attributes) {
  const element = svgElement('text', attributes);
  element.textContent = text;
  return element;
}
