/*
 * daemons: the entry points of the subcommands, each owned by its module.
 * main.c only dispatches; every entry returns a process exit code:
 * 0 success, 1 operational failure, 2 usage or configuration error.
 */
#ifndef GW_DAEMONS_H
#define GW_DAEMONS_H

int sender_main(int argc, char **argv);   /* gateway send      (sender.c)   */
int receiver_main(int argc, char **argv); /* gateway receive   (receiver.c) */
int inbox_main(int argc, char **argv);    /* gateway inbox ... (inbox.c)    */
int operator_main(const char *command, int argc, char **argv); /* status, list, show ... (operator.c) */

#endif
