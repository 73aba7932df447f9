"""Short real-looking texts the runtime tests classify (one list for every runtime test)."""

DEMO_TEXTS = [
    "I love this so much, best day ever!",
    "This is terrible, I hate waiting in line for hours.",
    "The meeting is at 3pm in room 4.",
    "what a wonderful surprise, thank you all",
    "worst service I have ever had, never again",
    "I am so sad and tired today",
]
