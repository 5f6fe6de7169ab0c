// The seven emotion labels the server scores, with how the page shows them. Every visual carries
// the label as text too, so colour is never the only carrier of meaning.

export const EMOTIONS = ['anger', 'disgust', 'fear', 'joy', 'sadness', 'surprise', 'neutral'];

const SYMBOLS = {
  anger: '😠',
  disgust: '😒',
  fear: '😨',
  joy: '😊',
  sadness: '😢',
  surprise: '😲',
  neutral: '😐',
};

/** True for one of the seven labels (anything else from the wire is shown as neutral). */
export function isEmotion(label) {
  return EMOTIONS.includes(label);
}

export function emotionSymbol(label) {
  return SYMBOLS[label] ?? SYMBOLS.neutral;
}

/** A 0..1 score as a whole percentage, clamped (bad input shows as 0%). */
export function percent(score) {
  const value = Number(score);
  if (!Number.isFinite(value)) return 0;
  return Math.round(Math.min(1, Math.max(0, value)) * 100);
}

/** Scores for the seven labels in display order, missing or malformed ones as 0. */
export function orderedScores(scores) {
  return EMOTIONS.map((label) => {
    const value = Number(scores?.[label]);
    return { label, score: Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0 };
  });
}

/** Screen-reader summary of a score set, strongest first: "fear 61%, sadness 20%, …". */
export function describeScores(scores) {
  return orderedScores(scores)
    .filter((entry) => entry.score >= 0.005)
    .sort((a, b) => b.score - a.score)
    .map((entry) => `${entry.label} ${percent(entry.score)}%`)
    .join(', ');
}
