"""The ctrl+p command palette: labs, new lab, the current lab's screens and steps, then the screen's
actions (with their keys) and Textual's own commands (theme, keys, screenshot, quit)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class LabCommands(Provider):
    def _commands(self) -> list[tuple[str, object, str]]:
        app = self.app
        cmds: list[tuple[str, object, str]] = [
            ("New lab", app.action_new_lab, "start the plan wizard"),
            ("Doctor a cluster labtui did not build", app.open_adopt,
             "give its kubeconfig, nodes and cloud; the rest is read from the live cluster"),
            ("Labs (home)", app.action_go_home, "the list of saved labs"),
        ]
        for rec in app.store.list_sessions():
            cmds.append((f"Resume lab: {rec.name}", partial(app.open_wizard, rec.name),
                         f"cloud {rec.cloud or '(adopted)'}, at {rec.wizard} / {rec.step or 'start'}"))
        current = app.current_session()
        if current:
            from labtui.stages import available_wizards

            from screens.registry import SESSION_SCREENS

            for e in SESSION_SCREENS:
                if e.available:
                    cmds.append((f"{e.title} ({current})", partial(app.open_session_screen, e.id, current), e.help))
            for wizard in available_wizards():
                for step in wizard.steps:
                    cmds.append((f"Step: {wizard.title} / {step.title}", partial(app.goto_step, wizard.id, step.id),
                                 step.why.splitlines()[0] if step.why else ""))
        return cmds

    def _all(self) -> list[tuple[str, object, str]]:
        """The lab's commands, then this screen's actions and Textual's own (one provider, so the
        order is fixed: discovery hits keep the order they are yielded in)."""
        system = [(c.title, c.callback, c.help) for c in self.app.get_system_commands(self.screen)]
        return self._commands() + system

    async def discover(self) -> Hits:
        for name, callback, help_text in self._all():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._all():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
