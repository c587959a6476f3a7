

user
hi <turn|>