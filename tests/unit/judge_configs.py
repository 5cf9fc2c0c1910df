"""Label configs with every control a judge can fill, built here (not from the generator),
so the judge's mapping is tested against control tags, whatever the generator emits."""

from __future__ import annotations

FULL_CONFIG = """<View>
  <Header value="Review (schema itest@v1)"/>
  <Paragraphs name="conversation" value="$messages" layout="dialogue" nameKey="role"
              textKey="content"/>
  <ParagraphLabels name="message_spans" toName="conversation">
    <Label value="hallucination"/><Label value="unsafe"/>
  </ParagraphLabels>
  <Text name="answer" value="$answer"/>
  <Labels name="answer_spans" toName="answer">
    <Label value="hallucination"/><Label value="unsafe"/>
  </Labels>
  <Choices name="verdict" toName="answer" choice="single-radio">
    <Choice value="pass"/><Choice value="fail"/>
  </Choices>
  <Choices name="categories" toName="answer" choice="multiple">
    <Choice value="hallucination"/><Choice value="incomplete"/><Choice value="unsafe"/>
  </Choices>
  <Number name="score" toName="answer" min="0" max="1" step="0.01"/>
  <TextArea name="explanation" toName="answer"/>
</View>
"""

RATING_CONFIG = """<View>
  <Header value="Review (schema itest@v1)"/>
  <Text name="answer" value="$answer"/>
  <Choices name="verdict" toName="answer"><Choice value="pass"/><Choice value="fail"/></Choices>
  <Rating name="score" toName="answer" maxRating="10"/>
</View>
"""

ITEST_SCHEMA = """\
id: itest
version: 1
title: Integration review
owner: owner@example.com
description: Judge whether the answer is supported by the conversation.
fields:
  - type: label
    values: [pass, fail]
    failing: [fail]
  - type: score
  - type: explanation
rubric:
  pass:
    definition: The answer is correct and supported.
    positive_examples: ["Tool said 57F; answer says 57F."]
  fail:
    definition: The answer is wrong or unsupported.
    negative_examples: ["A terse but correct answer is not a failure."]
"""
