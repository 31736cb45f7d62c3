<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="pt_BR" sourcelanguage="en">
<context>
    <name>VideoTile</name>
    <message>
        <source>No signal</source>
        <translation>Sem sinal</translation>
    </message>
    <message>
        <source>Reconnecting…</source>
        <translation>Reconectando…</translation>
    </message>
    <message>
        <source>Key frames only</source>
        <translation>Somente quadros-chave</translation>
    </message>
    <message>
        <source>Reset zoom (0)</source>
        <translation>Restaurar zoom (0)</translation>
    </message>
</context>
<context>
    <name>Timeline</name>
    <message>
        <source>No recordings</source>
        <translation>Sem gravações</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>Live</source>
        <translation>Ao vivo</translation>
    </message>
    <message>
        <source>Play</source>
        <translation>Reproduzir</translation>
    </message>
    <message>
        <source>Pause</source>
        <translation>Pausar</translation>
    </message>
    <message>
        <source>Reverse</source>
        <translation>Reverso</translation>
    </message>
    <message>
        <source>Step forward</source>
        <translation>Avançar quadro</translation>
    </message>
    <message>
        <source>Step back</source>
        <translation>Voltar quadro</translation>
    </message>
    <message>
        <source>Export…</source>
        <translation>Exportar…</translation>
    </message>
    <message>
        <source>Layout</source>
        <translation>Layout</translation>
    </message>
    <message>
        <source>Cameras</source>
        <translation>Câmeras</translation>
    </message>
    <message>
        <source>Recorders</source>
        <translation>Gravadores</translation>
    </message>
    <message>
        <source>Events</source>
        <translation>Eventos</translation>
    </message>
    <message>
        <source>Settings</source>
        <translation>Configurações</translation>
    </message>
</context>
</TS>
