"""The shipped tokenizer pattern and long-token script, run by Java, make tantivy's words.

OpenSearch and Elasticsearch run the `pattern` tokenizer with `java.util.regex` (Lucene's
`PatternTokenizer`) and the `predicate_token_filter` script in Painless, whose syntax for
this script is Java's. osmem-server (Go) cannot run either at index time, so this test
compiles both into a small Java program and compares its words with tantivy's on the
parity corpus: the real engines' behaviour, checked wherever a JDK is installed (the
developer machines and GitHub's Ubuntu runners), ahead of the engines themselves in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import tantivy

from service.search import mappings
from tests.contract.test_analyzer_parity import CORPUS, MULTIBYTE_LONG

# Splits like Lucene's PatternTokenizer with group -1 (text between matches, empty pieces
# dropped), keeps words for which the filter's script returns true, then lower-cases one code
# point at a time like Lucene's LowerCaseFilter.
_PROGRAM = """
import java.nio.file.*;
import java.util.*;
import java.util.regex.*;

public class Words {
  static boolean keep(CharSequence term) { %(script)s }

  public static void main(String[] args) throws Exception {
    Pattern separator = Pattern.compile(Files.readString(Path.of(args[0])));
    StringBuilder out = new StringBuilder();
    for (String text : Files.readAllLines(Path.of(args[1]))) {
      text = text.replace("\\\\n", "\\n");
      List<String> words = new ArrayList<>();
      Matcher m = separator.matcher(text);
      int start = 0;
      List<String> pieces = new ArrayList<>();
      while (m.find()) {
        if (m.start() > start) pieces.add(text.substring(start, m.start()));
        start = m.end();
      }
      if (start < text.length()) pieces.add(text.substring(start));
      for (String piece : pieces) {
        if (!keep(piece)) continue;
        StringBuilder lower = new StringBuilder();
        piece.codePoints().forEach(cp -> lower.appendCodePoint(Character.toLowerCase(cp)));
        words.add(lower.toString());
      }
      out.append(String.join(" ", words)).append("\\n");
    }
    System.out.print(out);
  }
}
"""


def _tantivy_words(text: str) -> str:
    # The local analyzer up to the stop words and stems, which the engines' own filters do.
    analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(mappings.MAX_TOKEN_BYTES))
        .filter(tantivy.Filter.lowercase())
        .build()
    )
    return " ".join(analyzer.analyze(text))


@pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK (javac) on this machine")
def test_java_splits_and_drops_long_words_like_tantivy(tmp_path: Path) -> None:
    # Given the shipped pattern and script, compiled as Java
    analysis = mappings.analysis()
    pattern = analysis["tokenizer"]["rag_words"]["pattern"]
    script = analysis["filter"][mappings.LONG_TOKEN_FILTER]["script"]["source"]
    source = _PROGRAM % {"script": script.replace("token.term", "term")}
    (tmp_path / "Words.java").write_text(source)
    (tmp_path / "pattern.txt").write_text(pattern)
    texts = [*CORPUS.values(), *MULTIBYTE_LONG.values()]
    (tmp_path / "texts.txt").write_text("\n".join(t.replace("\n", "\\n") for t in texts) + "\n")
    subprocess.run(["javac", "Words.java"], cwd=tmp_path, check=True, timeout=120)

    # When Java splits the parity corpus
    run = subprocess.run(
        ["java", "-cp", ".", "Words", "pattern.txt", "texts.txt"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Then every text gives tantivy's words
    assert run.stdout.splitlines() == [_tantivy_words(text) for text in texts], json.dumps(texts)
