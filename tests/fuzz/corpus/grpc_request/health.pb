
g4serve.v1.G4Serve