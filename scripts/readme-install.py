#!/usr/bin/env python3
"""The README's Install section, between `<!-- install:begin -->` and `<!-- install:end -->`.

  readme-install.py extract      prints the section for INSTALL.md in each tarball (links into
                                 the source tree reduced to their text)
  readme-install.py block TAG    prints the shell block that follows `<!-- ci: TAG -->`

Every ```sh block in the section must carry such a tag, so that tests/release/readme.sh can run
each of them; a block without one is an error.
"""

import os
import re
import sys

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def section():
    text = open(README, encoding="utf-8").read()
    m = re.search(r"<!-- install:begin -->\n(.*?)<!-- install:end -->", text, re.S)
    if not m:
        sys.exit("readme-install: README.md has no <!-- install:begin --> ... <!-- install:end --> section")
    return m.group(1)


def blocks(text):
    found = {}
    pending = None
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        tag = re.fullmatch(r"<!-- ci: ([a-z0-9-]+) -->", line.strip())
        if tag:
            pending = tag.group(1)
        elif line.startswith("```"):
            lang = line[3:].strip()
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            if lang in ("sh", "shell", "bash", "console"):
                if pending is None:
                    sys.exit(f"readme-install: a ```{lang} block in the Install section has no <!-- ci: TAG --> line before it: {lines[i + 1]!r}")
                if pending in found:
                    sys.exit(f"readme-install: two blocks tagged {pending}")
                found[pending] = "\n".join(lines[i + 1:j]) + "\n"
            pending = None
            i = j
        elif line.strip():
            pending = None if not line.startswith("<!--") else pending
        i += 1
    return found


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "extract":
        text = re.sub(r"<!-- ci: [a-z0-9-]+ -->\n", "", section())
        # Links into the source tree mean nothing in a tarball: keep their text only.
        text = re.sub(r"\[([^\]]+)\]\((?!https?:)[^)]+\)", r"\1", text)
        sys.stdout.write("(From pushrelay's README.)\n\n" + text)
    elif len(sys.argv) == 3 and sys.argv[1] == "block":
        found = blocks(section())
        if sys.argv[2] not in found:
            sys.exit(f"readme-install: no block tagged {sys.argv[2]} (there are: {', '.join(sorted(found))})")
        sys.stdout.write(found[sys.argv[2]])
    elif len(sys.argv) == 2 and sys.argv[1] == "tags":
        print("\n".join(blocks(section())))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
