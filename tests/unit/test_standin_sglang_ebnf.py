"""The stand-in sees SGLang's tool-call grammar: SGLang 0.5.23's glm47 parser constrains the whole
assistant turn with one EBNF (sampling params ``ebnf``), not a structural tag, so the stand-in must
read that grammar to know a call is forced (tool_choice required or a named function). Without it
the sampled stand-in sometimes asked a clarifying question under a named tool_choice, which a real
model under SGLang's grammar could not (seen failing tool_calls on both SGLang reference rows).

The grammar lines are SGLang 0.5.23's (FunctionCallParser("glm47").get_structure_constraint)."""
from __future__ import annotations

from glmverify.standin.forcing import ebnf_tool_constraint

HEAD = ("root ::= assistant_turn\nassistant_turn ::= thinking_block text_block tool_call_blocks\n"
        "text_block ::= (  text_without_special_tokens )?\n")
WEATHER = 'call_4bef4497b5eb3f6f ::= "get_weather"  ( arguments_4bef4497b5eb3f6f  )?\n'
TIME = 'call_c382cc46faabb394 ::= "get_time"  ( arguments_c382cc46faabb394  )?\n'


def test_required_named_and_auto_are_told_apart():
    assert ebnf_tool_constraint(HEAD + "tool_call_blocks ::= (  tool_call_unit )+\n" + WEATHER) == (True, ["get_weather"], False)
    assert ebnf_tool_constraint(HEAD + "tool_call_blocks ::= (  tool_call_unit )+\n" + WEATHER + TIME) == \
        (True, ["get_weather", "get_time"], False)
    assert ebnf_tool_constraint(HEAD + "tool_call_blocks ::= (  tool_call_unit )*\n" + WEATHER + TIME)[0] is False
    # parallel_tool_calls false: one block, required or optional
    assert ebnf_tool_constraint(HEAD + "tool_call_blocks ::= (  tool_call_unit )\n" + WEATHER) == (True, ["get_weather"], True)
    assert ebnf_tool_constraint(HEAD + "tool_call_blocks ::= (  tool_call_unit )?\n" + WEATHER)[0:3:2] == (False, True)
    assert ebnf_tool_constraint("root ::= [a-z]+") == (False, None, False)
    assert ebnf_tool_constraint(None) == (False, None, False)
