#!/usr/bin/env python3
"""Writes a contacts-like CSV for the import benchmark: ROWS rows (default
1,000,000, about 80 MB) of first name, last name, e-mail, phone, city, signup
date, score and status, with the mess real exports have (stray spaces, mixed
case, a few invalid e-mails, some duplicates). Deterministic (fixed seed).

usage: gen.py OUT.csv [ROWS]
"""
import random
import sys

FIRST = ["Ada", "grace", " Alan", "Barbara ", "edsger", "Donald", "Margaret", "KEN", "Dennis",
         "Frances", "john", "Radia", "Tim ", "linus", "Anita", "Niklaus", "Leslie", "barbara"]
LAST = ["Lovelace", "hopper", "Turing ", "Liskov", "dijkstra", "Knuth", "Hamilton", "thompson",
        "Ritchie", "Allen", "Backus", "Perlman", "Berners-Lee", "Torvalds", "Borg", "Wirth"]
CITY = ["New York", "  london", "Paris ", "berlin", "Tokyo", "São Paulo", "Lagos", "Mumbai",
        "Sydney", "toronto", "Mexico City", "Cairo"]
STATUS = ["active", "inactive", "Active", "pending"]
DOMAINS = ["example.com", "Example.org", "mail.test", "corp.example"]


def main():
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    rnd = random.Random(42)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("First Name,Last Name,Email,Phone,City,Signup Date,Score,Status\r\n")
        buf = []
        for i in range(rows):
            fn = rnd.choice(FIRST)
            ln = rnd.choice(LAST)
            n = i if rnd.random() > 0.01 else rnd.randrange(max(i, 1))  # ~1% duplicates
            email = f" {fn.strip()}.{ln.strip()}{n}@{rnd.choice(DOMAINS)} "
            if rnd.random() < 0.005:
                email = f"{fn.strip()}{n}-at-nowhere"  # invalid
            phone = f"+1 415-{rnd.randrange(200, 999)}-{rnd.randrange(1000, 9999)}"
            city = rnd.choice(CITY)
            date = f"20{rnd.randrange(10, 25):02d}-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"
            score = rnd.randrange(0, 1000)
            buf.append(f"{fn},{ln},{email},{phone},\"{city}\",{date},{score},{rnd.choice(STATUS)}\r\n")
            if len(buf) == 10000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


if __name__ == "__main__":
    main()
