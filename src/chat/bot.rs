//! EmotiBot's replies: short empathetic templates per emotion and intensity.

use crate::emotion::Emotion;

/// At or above this confidence the emotion counts as strong and gets the stronger templates.
pub const STRONG_CONFIDENCE: f64 = 0.6;

const VARIANTS: usize = 4;

/// Indexed by `[emotion][strong as usize][variant]`.
const TEMPLATES: [[[&str; VARIANTS]; 2]; 7] = [
    // anger
    [
        [
            "That sounds frustrating. Want to tell me more about what happened?",
            "I can hear some irritation there. What's bothering you most?",
            "Fair enough to be annoyed by that. What would help right now?",
            "That would get under my skin too. What set it off?",
        ],
        [
            "You sound really angry, and that's okay. I'm listening.",
            "That's infuriating. Take a breath; I'm here while you sort through it.",
            "I can tell this has you furious. Do you want to vent or work out a next step?",
            "Anger like that usually means something important was crossed. What was it?",
        ],
    ],
    // disgust
    [
        [
            "That doesn't sit right with you, does it?",
            "Sounds pretty unpleasant. What about it bothers you?",
            "I get why that would put you off.",
            "Hmm, that does sound distasteful. Want to talk it through?",
        ],
        [
            "Ugh, that sounds genuinely awful. No wonder you're repulsed.",
            "That's really gross, and your reaction makes total sense.",
            "I'd be revolted too. Do you want to step away from it for a bit?",
            "That crosses a line. It's fine to feel that strongly about it.",
        ],
    ],
    // fear
    [
        [
            "It sounds like something is making you a little uneasy. What's on your mind?",
            "A bit of worry is natural. What's the part that feels uncertain?",
            "I hear some nervousness. Want to walk through it together?",
            "That sounds unsettling. What would make it feel safer?",
        ],
        [
            "That sounds really scary. You're not alone with this; I'm here.",
            "I can tell you're frightened. Let's take it one small step at a time.",
            "That's a lot of fear to carry. What's the very next thing you need?",
            "Being that anxious is exhausting. Breathe slowly for a moment; I'm listening.",
        ],
    ],
    // joy
    [
        [
            "That's nice to hear! What made it good?",
            "Sounds like a pleasant moment. Tell me more!",
            "I like the sound of that.",
            "Glad things are going well. What's next?",
        ],
        [
            "That's wonderful news! I'm so happy for you!",
            "Amazing! You must be thrilled. Enjoy it!",
            "What a great feeling! Celebrate this one.",
            "Fantastic! Your excitement is contagious.",
        ],
    ],
    // sadness
    [
        [
            "That sounds a bit heavy. Do you want to talk about it?",
            "I'm sorry it's been like that. I'm here if you want to share more.",
            "That's a little disheartening. How are you holding up?",
            "It's okay to feel down about that.",
        ],
        [
            "I'm really sorry. That sounds painful, and your feelings make sense.",
            "That's a lot of sadness. Take all the time you need; I'm here.",
            "I'm so sorry you're going through this. You don't have to carry it alone.",
            "That sounds heartbreaking. Would it help to talk about what you miss most?",
        ],
    ],
    // surprise
    [
        [
            "Oh, interesting! I didn't see that coming either.",
            "Huh, that's unexpected. How do you feel about it?",
            "That's a twist. What happened next?",
            "Well, that's a surprise! Tell me more.",
        ],
        [
            "Wow, really?! That's a big surprise!",
            "No way! That must have caught you completely off guard.",
            "Whoa, that's astonishing! How are you taking it?",
            "That's incredible! I'm amazed too.",
        ],
    ],
    // neutral
    [
        [
            "Got it. What else is on your mind?",
            "I see. Tell me more whenever you like.",
            "Thanks for sharing that. How are you feeling about it?",
            "Okay! I'm listening.",
        ],
        [
            "Understood. Anything you'd like to talk through?",
            "Noted. How's the rest of your day going?",
            "Makes sense. What would you like to do next?",
            "Alright. I'm here if anything comes up.",
        ],
    ],
];

/// Identifies one template, so the next reply in the same room can avoid repeating it.
pub type TemplateId = u16;

/// Picks a reply for `emotion` at `confidence`. `roll` is any random number; `previous` is the
/// template last used in this conversation, which is never picked twice in a row.
pub fn compose(
    emotion: Emotion,
    confidence: f64,
    roll: u64,
    previous: Option<TemplateId>,
) -> (TemplateId, &'static str) {
    let strong = usize::from(confidence >= STRONG_CONFIDENCE);
    let mut variant = (roll % VARIANTS as u64) as usize;
    let id_of =
        |variant: usize| ((emotion.index() * 2 + strong) * VARIANTS + variant) as TemplateId;
    if previous == Some(id_of(variant)) {
        variant = (variant + 1) % VARIANTS;
    }
    (id_of(variant), TEMPLATES[emotion.index()][strong][variant])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_all_distinct() {
        let mut all: Vec<&str> = TEMPLATES.iter().flatten().flatten().copied().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
    }

    #[test]
    fn intensity_selects_the_template_set() {
        let (_, mild) = compose(Emotion::Sadness, 0.3, 0, None);
        let (_, strong) = compose(Emotion::Sadness, 0.9, 0, None);
        assert_eq!(mild, TEMPLATES[Emotion::Sadness.index()][0][0]);
        assert_eq!(strong, TEMPLATES[Emotion::Sadness.index()][1][0]);
    }

    #[test]
    fn never_repeats_the_previous_template() {
        let mut previous = None;
        let mut last_text = "";
        for roll in [3u64, 3, 3, 7, 7, 0, 4, 4] {
            let (id, text) = compose(Emotion::Joy, 0.8, roll, previous);
            assert_ne!(text, last_text);
            previous = Some(id);
            last_text = text;
        }
    }
}
