/** The report's files, by name, ready to write into the output directory. */
import { renderBlockInfluenceChart } from './chart';
import { CHART_SVG, REPORT_JSON, REPORT_MD, renderReportMarkdown } from './markdown';
import { QUALITY_SVG, renderQualityChart } from './qualityChart';
import type { PruneReport } from './types';

/** The report's files for an output directory, name -> content: report.json, report.md and chart.svg. */
export function reportFiles(report: PruneReport): Record<string, string> {
  return {
    [REPORT_JSON]: `${JSON.stringify(report, null, 2)}\n`,
    [REPORT_MD]: renderReportMarkdown(report, { chartFile: CHART_SVG }),
    [CHART_SVG]: renderBlockInfluenceChart(report),
    ...(report.qualityCurve ? { [QUALITY_SVG]: renderQualityChart(report.qualityCurve) } : {}),
  };
}
