//! Chat lines of the length and tone people type, cycled through by the senders, so the scorer
//! sees realistic input (mixed emotions, negations, intensifiers) rather than one fixed string.

pub const CHAT_LINES: &[&str] = &[
    "I can't believe we actually won the finals, best day ever!!",
    "ugh my flight got cancelled again and nobody at the desk knows anything",
    "honestly I'm a bit nervous about the interview tomorrow morning",
    "thanks so much for helping me move, you're a lifesaver",
    "my cat passed away this morning. I keep expecting her at the door",
    "wait, they're closing the whole office next month?? since when",
    "the pasta was fine I guess, nothing special",
    "that smell in the fridge is disgusting, who left the fish in there",
    "I'm so angry they cancelled the show without telling anyone",
    "can you send me the slides from yesterday's meeting when you get a chance",
    "not gonna lie, I'm really proud of how the launch went",
    "I keep hearing noises downstairs and I'm home alone, kind of scared",
    "it's raining again. feels like the whole week is grey and heavy",
    "omg you got the job?! congratulations, that's amazing news",
    "why does the printer jam every single time I'm in a hurry",
    "meeting moved to 3pm, same room as last time",
    "I miss how things were before everyone moved away",
    "that was the creepiest movie I've seen in years, I'm not sleeping tonight",
    "lol I did not expect the ending at all, what a twist",
    "the landlord still hasn't fixed the heating and it's freezing in here",
    "just finished my first half marathon, legs are dead but I'm so happy",
    "I'm not sure this is a good idea, it feels risky",
    "gross, there's a hair in my soup",
    "she said yes!!! we're getting married",
];

pub mod checks {
    use super::*;

    pub fn lines_are_short_plain_chat_messages() {
        assert!(CHAT_LINES.len() >= 16);
        for line in CHAT_LINES {
            assert!((10..=120).contains(&line.len()), "{line}");
            assert!(!line.contains('"') && !line.contains('\\'), "{line}");
        }
    }
}
