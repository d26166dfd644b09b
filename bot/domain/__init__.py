"""Pure domain: commands, ids, policy, durations, the clock and use-case results.

No I/O; imports nothing but this package and bot.providers.base.
"""
