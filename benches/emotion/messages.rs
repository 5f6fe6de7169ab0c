// The realistic chat messages of about 20, 80 and 1000 bytes (18, 77 and 997) that
// `benches/emotion.rs` times and `tests/emotion_profile.rs` counts instructions on; included by
// both so the two always measure the same text.

const SHORT: &str = "omg yes!! so happy";
const MEDIUM: &str =
    "I can't believe they cancelled the show :( honestly so disappointed, not cool";
const LONG: &str = "Okay so I finally watched the finale last night and I have THOUGHTS. \
The first half was honestly great, the pacing was tight, the soundtrack was sooo good and the \
acting from the lead was incredible. But then the last twenty minutes just fell apart for me. \
Why would they kill off the one character who actually had an arc?? It felt cheap, like the \
writers didn't know how to end it and went for shock value instead. I'm not angry exactly, more \
disappointed, because the whole season built up to something that never really happened. My \
friend loved it though 😂 and she says I'm overthinking it, which is fair, I do that. Still, I \
was kind of scared for the side characters the whole episode and the payoff just wasn't there. \
Anyway, 7/10, would still recommend the first three seasons to anyone who hasn't seen them :) \
Also, shout out to the costume team, every outfit in the wedding episode was perfect, and I'm a \
little sad it's over. Can't wait to rewatch it all with my sister next month!!";
